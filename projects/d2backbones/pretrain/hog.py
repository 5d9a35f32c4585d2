"""MaskFeat's target: histograms of oriented gradients (HOG), computed as SlowFast's
``HOGLayerC`` does, then laid out per patch like any :mod:`.targets` target.

Per RGB channel: Sobel gradients after reflect padding by one pixel; each pixel votes
its gradient magnitude (optionally weighted by a Gaussian window tiled over the image)
into one of ``nbins`` unsigned orientation bins; votes are summed over
``cell_size`` x ``cell_size`` cells, and each cell's histogram (per channel) is
L2-normalised over its bins. There is no block normalisation (Dalal-Triggs'): a cell
is normalised alone, and a cell without gradient stays zero.

Orientation: SlowFast bins ``atan2(gx, gy)`` with ``gx`` = left minus right and
``gy`` = top minus bottom. That angle is the *edge* direction (the gradient's plus
90 degrees), counter-clockwise from horizontal: bin ``k`` holds edges within
``[k, k + 1) * 180 / nbins`` degrees, so a horizontal edge votes into bin 0 and a
vertical one into bin ``nbins // 2`` (4 of 9, 80-100 degrees).

Per patch of ``patch_size`` pixels: (patch / cell)^2 cells x channels x bins values,
in the order (cell row, cell column, channel, bin); 16-px patches of 8-px cells give
MaskFeat's 2 x 2 x 3 x 9 = 108.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .targets import register_target

__all__ = ["HOGTarget", "gaussian_window_2d", "sobel_gradients"]


def sobel_gradients(images):
    """SlowFast's Sobel responses per channel, after reflect padding by one pixel.

    ``gx``: the kernel ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` (left minus right, rows
    weighted 1-2-1); ``gy``: its transpose (top minus bottom). Computed separably, as a
    difference then a smoothing, so a flat region gives exact zeros: a float32
    convolution leaves ~1e-8 there, which the per-cell normalisation would blow up
    into unit histograms of noise.

    Shapes: (B, C, H, W) -> two (B, C, H, W).
    """
    x = F.pad(images, (1, 1, 1, 1), mode="reflect")
    across = x[..., :, :-2] - x[..., :, 2:]
    down = x[..., :-2, :] - x[..., 2:, :]
    gx = across[..., :-2, :] + 2 * across[..., 1:-1, :] + across[..., 2:, :]
    gy = down[..., :, :-2] + 2 * down[..., :, 1:-1] + down[..., :, 2:]
    return gx, gy

def gaussian_window_2d(size, std):
    """(size, size) Gaussian centred on the window, summing to 1 (SlowFast's ``get_gkern``)."""
    offsets = torch.arange(size, dtype=torch.float32)
    offsets = (offsets - offsets.mean()) / std
    profile = torch.exp(-0.5 * offsets**2)
    window = torch.outer(profile, profile)
    return window / window.sum()


class HOGTarget(nn.Module):
    """Per-patch HOG features of the input images.

    Shapes: images (B, C, H, W) -> (B, H/p * W/p, dim), ``dim`` = (p / cell)^2 * C * nbins,
    patches in the row-major order of the encoder's grid. No gradient flows into it.
    """

    def __init__(self, patch_size, in_chans=3, nbins=9, cell_size=8, gaussian_window=0):
        """
        Args:
            patch_size (int): side of a predicted patch, a multiple of ``cell_size``.
            in_chans (int): image channels, each with its own histograms.
            nbins (int): unsigned orientation bins over 180 degrees (MaskFeat: 9).
            cell_size (int): pixels per side of a histogram cell (MaskFeat: 8).
            gaussian_window (int): side of a Gaussian (std = side / 2) tiled over the
                image to weight the votes, e.g. 16 for 16-px patches as MaskFeat; 0: none.
        """
        super().__init__()
        if patch_size % cell_size:
            raise ValueError(f"HOG patch_size {patch_size} is not a multiple of cell_size {cell_size}")
        self.patch_size, self.in_chans, self.nbins = patch_size, in_chans, nbins
        self.cell_size, self.gaussian_window = cell_size, gaussian_window
        self.cells_per_patch = patch_size // cell_size
        self.dim = self.cells_per_patch**2 * in_chans * nbins
        if gaussian_window:
            # Not in the state dict: the target adds no names to a method's checkpoint.
            self.register_buffer("window", gaussian_window_2d(gaussian_window, gaussian_window // 2), persistent=False)

    def cell_histograms(self, images):
        """(B, C, H, W) -> (B, C, nbins, H / cell, W / cell), each cell's bins of unit L2 norm (or zero)."""
        batch, channels, height, width = images.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image size {height}x{width} is not a multiple of the HOG patch size {self.patch_size}")
        # Angles near bin edges must not depend on AMP: always float32.
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            gx, gy = sobel_gradients(images.float())
            magnitude = torch.hypot(gx, gy)
            if self.gaussian_window:
                magnitude = magnitude * self._tiled_window(height, width)
            bins = torch.floor(torch.atan2(gx, gy) / math.pi * self.nbins).long() % self.nbins
            votes = magnitude.new_zeros(batch, channels, self.nbins, height, width)
            votes.scatter_add_(2, bins[:, :, None], magnitude[:, :, None])
            cell = self.cell_size
            cells = votes.view(batch, channels, self.nbins, height // cell, cell, width // cell, cell).sum((4, 6))
            return F.normalize(cells, p=2, dim=2)

    def _tiled_window(self, height, width):
        size = self.gaussian_window
        if height % size or width % size:
            raise ValueError(f"image size {height}x{width} is not a multiple of the HOG gaussian_window {size}: "
                             "set gaussian_window to the patch size or 0")
        return self.window.repeat(height // size, width // size)

    def to_patches(self, cells):
        """(B, C, nbins, rows * k, cols * k) cell histograms -> (B, rows * cols, k * k * C * nbins)."""
        batch, channels, nbins, cell_rows, cell_cols = cells.shape
        k = self.cells_per_patch
        x = cells.view(batch, channels, nbins, cell_rows // k, k, cell_cols // k, k)
        return x.permute(0, 3, 5, 4, 6, 1, 2).reshape(batch, (cell_rows // k) * (cell_cols // k), -1)

    def to_cells(self, patches, grid):
        """The inverse of :meth:`to_patches` for ``grid`` = (rows, cols) patches."""
        rows, cols = grid
        k, batch = self.cells_per_patch, patches.shape[0]
        x = patches.reshape(batch, rows, cols, k, k, self.in_chans, self.nbins)
        return x.permute(0, 5, 6, 1, 3, 2, 4).reshape(batch, self.in_chans, self.nbins, rows * k, cols * k)

    def forward(self, images):
        return self.to_patches(self.cell_histograms(images))

    def extra_repr(self):
        return (f"patch_size={self.patch_size}, nbins={self.nbins}, cell_size={self.cell_size}, "
                f"gaussian_window={self.gaussian_window}")


register_target("hog", HOGTarget)
