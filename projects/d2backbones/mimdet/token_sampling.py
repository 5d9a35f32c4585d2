"""Which tokens MIMDet's encoder sees: a random share per image, padding dropped first."""
import math

import torch

from .conv_stem import TOKEN_STRIDE

__all__ = ["gather_tokens", "num_kept_tokens", "sample_kept_tokens", "valid_token_mask"]


def num_kept_tokens(num_tokens, ratio):
    """How many of ``num_tokens`` tokens a sample ratio keeps: ``int(L * ratio)``, at least 1."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"sample ratio must be in (0, 1], got {ratio}")
    return max(1, int(num_tokens * ratio))


def sample_kept_tokens(valid, num_keep):
    """Pick ``num_keep`` token positions per image at random, padding last.

    Every image gets its own random order; positions in the padded area (``valid``
    False) come after all real ones, so they are dropped first. The result is sorted,
    so keeping every token gives ``0..L-1`` in order. Draws from torch's global
    generator: deterministic under ``torch.manual_seed``.

    Args:
        valid (Tensor): (B, L) bool, True where the token covers image content.
        num_keep (int): tokens to keep per image.

    Returns:
        Tensor: (B, num_keep) int64 positions, ascending.
    """
    noise = torch.rand(valid.shape, device=valid.device)
    # Noise is below 1, so any padded position ranks after every valid one.
    noise = noise.masked_fill(~valid, 2.0)
    kept = noise.argsort(dim=1)[:, :num_keep]
    return kept.sort(dim=1).values


def valid_token_mask(image_sizes, grid_hw, batch_size, device):
    """(B, H * W) bool: which stride-16 tokens touch the unpadded part of each image.

    Args:
        image_sizes (list[tuple[int, int]] or None): (h, w) of each image before
            padding; None means no padding.
        grid_hw (tuple[int, int]): token grid of the padded batch.
    """
    height, width = grid_hw
    if image_sizes is None:
        return torch.ones(batch_size, height * width, dtype=torch.bool, device=device)
    if len(image_sizes) != batch_size:
        raise ValueError(f"got {len(image_sizes)} image sizes for a batch of {batch_size} images")
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    masks = [
        (rows[:, None] < math.ceil(h / TOKEN_STRIDE)) & (cols[None, :] < math.ceil(w / TOKEN_STRIDE))
        for h, w in image_sizes
    ]
    return torch.stack(masks).flatten(1)


def gather_tokens(tokens, index):
    """tokens (B, L, C), index (B, K) -> (B, K, C)."""
    return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))
