"""Reconstruction losses counted at the masked positions only."""
__all__ = ["MASKED_LOSSES", "masked_patch_l1", "masked_patch_mse"]


def masked_patch_mse(pred, target, mask):
    """MAE's loss: squared error averaged within each patch, then over the masked patches.

    Args:
        pred, target (Tensor): (B, L, D).
        mask (Tensor): (B, L), 1 at masked (removed) patches, 0 at visible ones.

    Returns:
        Tensor: scalar. Visible patches get zero weight, so their target never matters.
    """
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


def masked_patch_l1(pred, target, mask):
    """SimMIM's loss: absolute error averaged over the values of the masked patches.

    SimMIM averages ``|x - x_rec|`` over masked pixels and channels; every patch holds
    as many values, so that is the mean, over masked patches, of each patch's mean.

    Args and returns: as :func:`masked_patch_mse`.
    """
    per_patch = (pred - target).abs().mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


# The losses a config names (``loss="mse"``); each ``loss(pred, target, mask)``.
MASKED_LOSSES = {"mse": masked_patch_mse, "l1": masked_patch_l1}
