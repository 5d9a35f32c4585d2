"""Mask generators of the mask-token methods, as LazyConfig objects.

A generator masks a grid of ``unit``-pixel cells: ``generator(batch, (rows, cols))``
returns (B, rows, cols) floats, 1 at masked cells, and :class:`~.mask_token.MaskTokenPretrainer`
spreads them over the encoder's tokens and the predicted patches. The drawing itself
is in :mod:`d2backbones.layers.masking`.
"""
from ..layers import block_masking, random_patch_masking

__all__ = ["BlockMask", "RandomMask"]


class BlockMask:
    """BEiT's block-wise masking, MaskFeat's on images: rectangles of cells, ratio 0.4."""

    def __init__(self, mask_ratio=0.4, unit=16, min_block=16, min_aspect=0.3):
        """
        Args:
            mask_ratio (float): share of the cells masked per image.
            unit (int): pixels per cell side (MaskFeat: the 16-px patch).
            min_block (int): fewest cells in a rectangle (BEiT: 16).
            min_aspect (float): rectangles' aspect ratios lie in [min_aspect, 1 / min_aspect].
        """
        self.mask_ratio, self.unit = mask_ratio, unit
        self.min_block, self.min_aspect = min_block, min_aspect

    def __call__(self, batch, grid, generator=None):
        return block_masking(batch, grid, self.mask_ratio, self.min_block, self.min_aspect, generator)

    def __repr__(self):
        return f"BlockMask(mask_ratio={self.mask_ratio}, unit={self.unit}, min_block={self.min_block})"


class RandomMask:
    """SimMIM's masking: independent random cells (32-px mask patches), ratio 0.6."""

    def __init__(self, mask_ratio=0.6, unit=32):
        """
        Args:
            mask_ratio (float): share of the cells masked per image.
            unit (int): pixels per cell side (SimMIM's ``MASK_PATCH_SIZE``).
        """
        self.mask_ratio, self.unit = mask_ratio, unit

    def __call__(self, batch, grid, generator=None):
        return random_patch_masking(batch, grid, self.mask_ratio, generator)

    def __repr__(self):
        return f"RandomMask(mask_ratio={self.mask_ratio}, unit={self.unit})"
