"""Per-image random token masking of masked image modeling (MAE's ``random_masking``).

Every image draws its own uniform noise per token; sorting it gives a random
permutation whose first ``num_visible_tokens(L, mask_ratio)`` entries are kept. The
shuffle is undone later with ``ids_restore`` (the inverse permutation), e.g. to put
decoded tokens and mask tokens back on the grid.

The mask-token methods (MaskFeat, SimMIM) keep every token and replace the masked
ones, so their masks are (B, rows, cols) grids, 1 at masked cells:
:func:`block_masking` (BEiT's and MaskFeat's rectangles) and
:func:`random_patch_masking` (SimMIM's independent cells), put on a finer grid with
:func:`upsample_mask`.
"""
import math
import random

import torch

__all__ = [
    "block_masking",
    "num_visible_tokens",
    "random_masking",
    "random_patch_masking",
    "unshuffle_tokens",
    "upsample_mask",
    "visible_from_noise",
]


def _check_ratio(mask_ratio):
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")


def num_visible_tokens(num_tokens, mask_ratio):
    """Tokens kept of ``num_tokens`` at ``mask_ratio``: ``int(L * (1 - ratio))``, as MAE rounds."""
    _check_ratio(mask_ratio)
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


def _python_rng(generator):
    """A ``random.Random`` seeded from torch's generator, so the trainer's seed fixes the masks."""
    return random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))


def _add_block(mask, budget, min_block, min_aspect, rng, attempts=10):
    """Mask one random rectangle of ``mask`` ((rows, cols) bool, in place) that adds
    between 1 and ``budget`` new cells; returns how many it added (0: none fitted)."""
    rows, cols = mask.shape
    log_aspect = math.log(min_aspect)
    for _ in range(attempts):
        area = rng.uniform(min(min_block, budget), budget)
        aspect = math.exp(rng.uniform(log_aspect, -log_aspect))
        height, width = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if not (0 < height < rows and 0 < width < cols):
            continue
        top, left = rng.randint(0, rows - height), rng.randint(0, cols - width)
        window = mask[top:top + height, left:left + width]
        added = height * width - int(window.sum())
        if 0 < added <= budget:
            window.fill_(True)
            return added
    return 0


def block_masking(batch, grid, mask_ratio, min_block=16, min_aspect=0.3, generator=None):
    """BEiT's block-wise masking, as MaskFeat uses it on images (ratio 0.4).

    Each image masks random rectangles, of area drawn uniformly from
    [``min_block``, what is left to mask] cells and aspect ratio log-uniformly from
    [``min_aspect``, 1 / ``min_aspect``], each adding at most what is left, until
    ``round(rows * cols * mask_ratio)`` cells are masked. BEiT stops (a few cells
    short) when no rectangle fits the remainder; here single random cells fill it, so
    every image masks exactly that count and the loss always averages as many cells.

    Args:
        batch (int): images.
        grid (tuple[int, int]): (rows, cols) of mask cells (the token grid for MaskFeat).
        mask_ratio (float): share of the cells to mask, in [0, 1).
        generator (torch.Generator or None): source of randomness; None: torch's global one.

    Returns:
        Tensor: (batch, rows, cols) float, 1 at masked cells; on the CPU.
    """
    _check_ratio(mask_ratio)
    rows, cols = grid
    target = round(rows * cols * mask_ratio)
    rng = _python_rng(generator)
    masks = torch.zeros(batch, rows, cols, dtype=torch.bool)
    for mask in masks:
        count = 0
        while count < target:
            added = _add_block(mask, target - count, min_block, min_aspect, rng)
            if added == 0:
                break
            count += added
        free = (~mask).flatten().nonzero()[:, 0].tolist()
        mask.view(-1)[rng.sample(free, target - count)] = True
    return masks.float()


def random_patch_masking(batch, grid, mask_ratio, generator=None):
    """SimMIM's mask: ``ceil(rows * cols * mask_ratio)`` cells per image, chosen
    uniformly at random (SimMIM's cells are 32-px mask patches, ratio 0.6).

    Args and returns: as :func:`block_masking`.
    """
    _check_ratio(mask_ratio)
    rows, cols = grid
    # The epsilon keeps a product like 10 * 0.7 = 7.000000000000001 from rounding up.
    count = math.ceil(rows * cols * mask_ratio - 1e-9)
    chosen = torch.rand(batch, rows * cols, generator=generator).argsort(dim=1)[:, :count]
    mask = torch.zeros(batch, rows * cols).scatter_(1, chosen, 1.0)
    return mask.view(batch, rows, cols)
