"""HOG drawn as oriented glyphs: per cell, one line per orientation bin.

A bin's line runs through the cell's centre along the bin's middle orientation (the
edge direction, counter-clockwise from horizontal, as :mod:`d2backbones.pretrain.hog`
defines the bins), with a length and a brightness that grow with the bin's value, so
a cell on a straight edge shows one bright line along it. Each colour channel's
histograms are drawn in its own colour (red, green, blue), so where the channels
agree the glyphs are white.
"""
import math

import numpy as np
import torch

__all__ = ["hog_glyphs"]

# Points sampled along each line, per pixel of the cell side.
SAMPLES_PER_PIXEL = 2


def hog_glyphs(cells, cell_pixels=16):
    """Draw cell histograms as glyph images.

    Args:
        cells (Tensor): (B, C, nbins, rows, cols) histograms, values in [0, 1] (larger
            values, e.g. from a prediction, are clipped); C of 1 or 3 channels.
        cell_pixels (int): side of a drawn cell.

    Returns:
        Tensor: (B, rows * cell_pixels, cols * cell_pixels, 3) float in [0, 1], black background.
    """
    if cells.shape[1] not in (1, 3):
        raise ValueError(f"hog_glyphs draws 1 or 3 channels in colour; got {cells.shape[1]}")
    values = cells.detach().float().clamp(0, 1).cpu().numpy()
    batch, channels, nbins, rows, cols = values.shape
    angles = (np.arange(nbins) + 0.5) * math.pi / nbins
    half = (cell_pixels - 1) / 2
    steps = np.linspace(-1.0, 1.0, SAMPLES_PER_PIXEL * cell_pixels)
    # (nbins, steps) offsets of a unit-value line from the cell centre; image y points down.
    dx = np.cos(angles)[:, None] * steps * half
    dy = -np.sin(angles)[:, None] * steps * half
    b, _, k, r, q = np.meshgrid(*map(np.arange, values.shape), indexing="ij")
    v = values[..., None]
    # (B, C, nbins, rows, cols, steps) pixel coordinates of every sample of every line.
    xs = np.rint(q[..., None] * cell_pixels + half + dx[k] * v).astype(int)
    ys = np.rint(r[..., None] * cell_pixels + half + dy[k] * v).astype(int)
    images = np.broadcast_to(b[..., None], xs.shape)
    brightness = np.broadcast_to(v, xs.shape)
    canvas = np.zeros((batch, rows * cell_pixels, cols * cell_pixels, 3), dtype=np.float32)
    for channel in range(channels):
        for colour in (range(3) if channels == 1 else (channel,)):
            np.maximum.at(canvas[..., colour], (images[:, channel], ys[:, channel], xs[:, channel]),
                          brightness[:, channel])
    return torch.from_numpy(canvas)
