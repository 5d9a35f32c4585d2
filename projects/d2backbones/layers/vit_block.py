"""The transformer block of plain-ViT backbones, with its optional conv branch.

:class:`Block` is ViTDet's (window or global attention with decomposed rel-pos,
``detectron2.modeling.backbone.vit.Block``'s arguments and keys); MIMDet's encoder
and decoder run the same block with global attention and no rel-pos, and the MIM
pretraining models reuse it too.
"""
import fvcore.nn.weight_init as weight_init
import torch.nn as nn
from detectron2.layers import CNNBlockBase, Conv2d
from timm.layers import DropPath

from .attention import Attention
from .mlp import Mlp
from .norm import get_norm
from .windows import window_partition, window_unpartition

__all__ = ["Block", "ResBottleneckBlock"]


class ResBottleneckBlock(CNNBlockBase):
    """1x1 -> 3x3 -> 1x1 conv bottleneck with LN, added residually after a ViT block
    ("conv propagation" in the ViTDet paper). The last norm starts at zero so the
    block starts as the identity.

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, in_channels, out_channels, bottleneck_channels, norm="LN", act_layer=nn.GELU):
        super().__init__(in_channels, out_channels, 1)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, bias=False)
        self.norm1 = get_norm(norm, bottleneck_channels)
        self.act1 = act_layer()
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, padding=1, bias=False)
        self.norm2 = get_norm(norm, bottleneck_channels)
        self.act2 = act_layer()
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False)
        self.norm3 = get_norm(norm, out_channels)

        for conv in (self.conv1, self.conv2, self.conv3):
            weight_init.c2_msra_fill(conv)
        for norm_layer in (self.norm1, self.norm2):
            nn.init.ones_(norm_layer.weight)
            nn.init.zeros_(norm_layer.bias)
        nn.init.zeros_(self.norm3.weight)
        nn.init.zeros_(self.norm3.bias)

    def forward(self, x):
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return x + out


class Block(nn.Module):
    """Pre-norm transformer block with windowed or global attention.

    Shapes: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path=0.0,
        norm_layer=nn.LayerNorm,
        act_layer=nn.GELU,
        use_rel_pos=False,
        rel_pos_zero_init=True,
        window_size=0,
        use_residual_block=False,
        input_size=None,
        rel_pos_mode="auto",
    ):
        """
        Args:
            window_size (int): side of the attention windows; 0 means global attention.
            input_size (tuple[int, int]): token grid of a global block; windowed blocks
                size their rel-pos tables to the window instead.
            rel_pos_mode (str): see :class:`d2backbones.layers.Attention`.
            Others as in detectron2's ``Block``.
        """
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            rel_pos_zero_init=rel_pos_zero_init,
            input_size=input_size if window_size == 0 else (window_size, window_size),
            rel_pos_mode=rel_pos_mode,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        self.window_size = window_size
        self.use_residual_block = use_residual_block
        if use_residual_block:
            self.residual = ResBottleneckBlock(dim, dim, dim // 2, norm="LN", act_layer=act_layer)

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = x.shape[1:3]
            windows, padded_hw = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(windows), self.window_size, padded_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + self.drop_path(x)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.use_residual_block:
            x = self.residual(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x
