"""Per-image random token masking of masked image modeling (MAE's ``random_masking``).

Every image draws its own uniform noise per token; sorting it gives a random
permutation whose first ``num_visible_tokens(L, mask_ratio)`` entries are kept. The
shuffle is undone later with ``ids_restore`` (the inverse permutation), e.g. to put
decoded tokens and mask tokens back on the grid.
"""
import torch

__all__ = ["num_visible_tokens", "random_masking", "unshuffle_tokens", "upsample_mask", "visible_from_noise"]


def num_visible_tokens(num_tokens, mask_ratio):
    """Tokens kept of ``num_tokens`` at ``mask_ratio``: ``int(L * (1 - ratio))``, as MAE rounds."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return int(num_tokens * (1 - mask_ratio))


def random_masking(tokens, mask_ratio, noise=None):
    """Keep a random subset of each image's tokens.

    Args:
        tokens (Tensor): (B, L, C).
        mask_ratio (float): share of the L tokens to remove, in [0, 1).
        noise (Tensor or None): (B, L) sort keys; lowest are kept. None draws U(0, 1)
            from torch's generator (pass it to make a test or a picture repeatable).

    Returns:
        kept (Tensor): (B, K, C) the visible tokens, in shuffled order, K = ``num_visible_tokens``.
        mask (Tensor): (B, L) float, 1 where a token was removed, 0 where kept, in grid order.
        ids_restore (Tensor): (B, L) long; ``shuffled.gather(1, ids_restore)`` is grid order.
    """
    batch, length, channels = tokens.shape
    num_kept = num_visible_tokens(length, mask_ratio)
    if noise is None:
        noise = torch.rand(batch, length, device=tokens.device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :num_kept]
    kept = tokens.gather(1, ids_keep[..., None].expand(-1, -1, channels))
    mask = torch.ones(batch, length, device=tokens.device, dtype=tokens.dtype)
    mask[:, :num_kept] = 0
    return kept, mask.gather(1, ids_restore), ids_restore


def unshuffle_tokens(shuffled, ids_restore):
    """Put a shuffled (B, L, C) sequence (kept tokens first, then fillers) back in grid order."""
    return shuffled.gather(1, ids_restore[..., None].expand(-1, -1, shuffled.shape[-1]))


def visible_from_noise(noise, num_visible):
    """(B, L) noise -> (B, L) bool, True at each row's ``num_visible`` lowest entries:
    the tokens :func:`random_masking` keeps for the same noise, as a map instead of a list."""
    kept = noise.argsort(dim=1)[:, :num_visible]
    return torch.zeros_like(noise, dtype=torch.bool).scatter_(1, kept, True)


def upsample_mask(mask, factor):
    """(B, h, w) or (B, 1, h, w) mask -> each cell repeated ``factor`` x ``factor`` times:
    a coarse-grid mask at a finer feature map's resolution (nearest, exact)."""
    return mask.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
