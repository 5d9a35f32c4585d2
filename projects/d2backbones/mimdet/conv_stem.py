"""MIMDet's convolutional stem, which replaces the ViT's patchify stem and gives the
high-resolution pyramid levels (c2, c3) and the stride-16 tokens."""
import torch.nn as nn

from ..layers import recompute_in_backward

__all__ = ["ConvStem", "TOKEN_STRIDE"]

# Four stride-2 convs: tokens live at stride 16, like the ViT-B/16 patches they replace.
TOKEN_STRIDE = 16
STEM_DEPTH = 4


class ConvStem(nn.Module):
    """Four 3x3 stride-2 convs (no bias) with GroupNorm(1, C) and GELU, then a 1x1 conv
    to the encoder width (Xiao et al., "Early Convolutions Help Transformers See Better").

    Widths double from ``embed_dim / 8``: 96, 192, 384, 768 for ViT-B. Parameter names
    (``proj.<stage>.<layer>``) are the reference's.

    Shapes: (N, in_chans, H, W) -> [(N, C/4, H/4, W/4), (N, C/2, H/8, W/8), (N, C, H/16, W/16)]
    with C = embed_dim: the stride-4, stride-8 and stride-16 maps.
    """

    def __init__(self, in_chans=3, embed_dim=768, use_act_checkpoint=False):
        """
        Args:
            use_act_checkpoint (bool): in training, recompute the stem's activations in
                the backward pass instead of storing them; only the image and the three
                output maps are kept.
        """
        super().__init__()
        if embed_dim % 2 ** (STEM_DEPTH - 1):
            raise ValueError(f"ConvStem halves embed_dim={embed_dim} three times; it must be divisible by 8")
        self.use_act_checkpoint = use_act_checkpoint
        widths = [embed_dim // 2 ** (STEM_DEPTH - 1 - i) for i in range(STEM_DEPTH)]
        self.out_channels = [widths[1], widths[2], embed_dim]
        stages = []
        for i, width in enumerate(widths):
            layers = [
                nn.Conv2d(in_chans if i == 0 else widths[i - 1], width, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(1, width, eps=1e-6),
                nn.GELU(),
            ]
            if i == STEM_DEPTH - 1:
                layers.append(nn.Conv2d(width, embed_dim, 1))
            stages.append(nn.Sequential(*layers))
        self.proj = nn.ModuleList(stages)

    def forward(self, x):
        # One checkpointed segment for the four stages, not one per stage: the stride-2
        # map (the largest of the stem, 89 MB for an 800x1216 image) is then not kept
        # as the next stage's input, and backward recomputes each stage once either way.
        return recompute_in_backward(self, self._stages, x) if self.use_act_checkpoint else self._stages(x)

    def _stages(self, x):
        maps = []
        for stage in self.proj:
            x = stage(x)
            maps.append(x)
        # The stride-2 map is too large and too shallow to be a pyramid level.
        return maps[1:]
