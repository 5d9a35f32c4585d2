"""Channels-first LayerNorm and the norm factory used by the pyramids and heads."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.layers import get_norm as d2_get_norm


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor.

    Same parameters (``weight``, ``bias``) and maths as detectron2's ``LayerNorm``
    (the "LN" norm), but computed by the fused ``F.layer_norm`` kernel on an
    NHWC view instead of four separate reductions.

    Shapes: (N, C, H, W) -> (N, C, H, W), in the input's memory format.
    """

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.normalized_shape = (num_channels,)

    def forward(self, x):
        out = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        out = out.permute(0, 3, 1, 2)  # channels-last, whatever the input's layout
        if x.is_contiguous(memory_format=torch.channels_last):
            return out
        # Hand an NCHW input's result on as NCHW, as detectron2's LayerNorm does: a
        # channels-last input makes the next conv's backward 3.5x slower on the CPU
        # (oneDNN, a 3x3 conv of 256 channels at 256 x 256: 5.6 s against 1.6 s).
        return out.contiguous()


def get_norm(norm, out_channels):
    """detectron2's ``get_norm``, with "LN" served by :class:`LayerNorm2d`."""
    if norm == "LN":
        return LayerNorm2d(out_channels)
    return d2_get_norm(norm, out_channels)
