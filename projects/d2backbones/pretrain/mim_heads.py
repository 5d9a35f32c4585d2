"""The light prediction heads of the mask-token methods.

A head maps the encoder's (B, C, h, w) output to one target vector per output
position, (B, h * w, dim), row-major as the targets of :mod:`.targets` and
:mod:`.hog` are laid out. Both heads are a single layer, as the papers found enough.
"""
import torch.nn as nn

from .targets import patchify

__all__ = ["HEADS", "LinearHead", "PixelShuffleHead"]


class LinearHead(nn.Linear):
    """MaskFeat's head: a linear layer per position, (B, C, h, w) -> (B, h * w, dim)."""

    def __init__(self, in_channels, out_dim):
        super().__init__(in_channels, out_dim)
        nn.init.trunc_normal_(self.weight, std=0.02)
        nn.init.zeros_(self.bias)

    def forward(self, features):
        return super().forward(features.flatten(2).transpose(1, 2))


class PixelShuffleHead(nn.Sequential):
    """SimMIM's decoder: a 1 x 1 conv to stride^2 * C channels and ``PixelShuffle(stride)``,
    the image at full resolution (keys ``0.weight``, ``0.bias`` as SimMIM's ``decoder``).

    Shapes: (B, C_enc, h, w) -> image (B, C, h * s, w * s), returned patchified as
    (B, h * w, s * s * C) to meet the pixel target patch by patch.
    """

    def __init__(self, in_channels, stride, out_chans=3):
        super().__init__(nn.Conv2d(in_channels, stride**2 * out_chans, kernel_size=1), nn.PixelShuffle(stride))
        self.stride = stride

    def forward(self, features):
        return patchify(super().forward(features), self.stride)


def _linear(in_channels, target):
    return LinearHead(in_channels, target.dim)


def _pixel_shuffle(in_channels, target):
    channels = getattr(target, "in_chans", 3)
    if target.dim != target.patch_size**2 * channels:
        raise ValueError(f"the pixel_shuffle head predicts pixels ({target.patch_size}^2 x {channels} per patch) "
                         f"but the target has {target.dim} values per patch: use head='linear'")
    return PixelShuffleHead(in_channels, target.patch_size, channels)


# Heads a config names (``head="linear"``): ``factory(encoder channels, target module)``.
HEADS = {"linear": _linear, "pixel_shuffle": _pixel_shuffle}
