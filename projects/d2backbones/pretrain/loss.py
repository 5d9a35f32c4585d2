"""Reconstruction losses counted at the masked positions only."""
__all__ = ["masked_patch_mse"]


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
