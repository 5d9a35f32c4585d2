"""Swin Transformer (Liu et al., ICCV 2021) as a detectron2 backbone.

The network is timm's ``SwinTransformer``, built without weights for any input size.
This module adds what the official detection code (Swin-Transformer-Object-Detection,
and detectron2's ``SwinTransformer``) adds around it: a LayerNorm on every output
stage, padding of each block's map to window multiples *before* the cyclic shift,
stage freezing, activation checkpointing and the detectron2 ``Backbone`` interface
(``res2``..``res5`` at strides 4..32), the output norms, freezing and interface
shared with ConvNeXt through ``HierarchicalBackbone``. Pretrained weights come only
through the checkpointer, converted by :mod:`.convert`.
"""
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer as TimmSwinTransformer
from timm.models.swin_transformer import SwinTransformerBlock, window_partition, window_reverse

from ..modeling.hierarchical import STAGE_NAMES, HierarchicalBackbone

__all__ = ["PadThenShiftBlock", "SWIN_SIZES", "SwinTransformer"]

logger = logging.getLogger(__name__)

# Sizes of the paper (Sec. 3.3).
SWIN_SIZES = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "large": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}


class PadThenShiftBlock(SwinTransformerBlock):
    """timm's Swin block, with the windows laid out as in the official detection code.

    timm shifts the map, then pads it to window multiples; the detection code pads
    first and shifts the padded map, so the shifted windows (and their masks) wrap at
    the padded border. Both agree when a side is a window multiple; at other sizes
    only the second reproduces detection checkpoints, so this block overrides the
    attention step only. Shapes: (B, H, W, C) -> (B, H, W, C).
    """

    def _attn(self, x):
        _, height, width, channels = x.shape
        win_h, win_w = self.window_size
        x = F.pad(x, (0, 0, 0, -width % win_w, 0, -height % win_h))
        padded_h, padded_w = x.shape[1:3]
        shift = self.shift_size
        mask = None
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            mask = self.get_attn_mask(x)
        windows = window_partition(x, self.window_size).view(-1, self.window_area, channels)
        windows = self.attn(windows, mask=mask).view(-1, win_h, win_w, channels)
        x = window_reverse(windows, self.window_size, padded_h, padded_w)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :height, :width].contiguous()


class SwinTransformer(HierarchicalBackbone):
    """timm's Swin Transformer with a LayerNorm on each output stage.

    Input (N, 3, H, W) of any size: it is zero-padded to a multiple of the patch size,
    each block pads its map to window multiples, and each patch merging pads odd sides,
    so ``res{i}`` is (N, embed_dim * 2**(i - 2), ceil(H / 2**i), ceil(W / 2**i)).
    Parameter names: ``patch_embed.*``, ``layers.{i}.downsample.*`` (patch merging that
    opens stage i >= 1), ``layers.{i}.blocks.{j}.*`` (timm's), and ``norm{i}.*`` for
    the output norms (detectron2's and the official detection code's).
    """

    def __init__(
        self,
        pretrain_img_size=224,
        patch_size=4,
        in_chans=3,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.2,
        attn_drop_rate=0.0,
        out_features=STAGE_NAMES,
        freeze_at=0,
        use_act_checkpoint=False,
    ):
        """
        Args:
            pretrain_img_size (int): image size timm builds with; any size runs.
            patch_size (int): side of the patches of the first stage (stride of res2).
            in_chans (int): input channels.
            embed_dim (int): channels of stage 0, doubled at each later stage.
            depths, num_heads (tuple[int]): blocks and attention heads per stage (4 stages).
            window_size (int): attention window side, at every stage and input size.
            mlp_ratio, qkv_bias, attn_drop_rate: as timm's.
            drop_path_rate (float): stochastic depth of the last block, rising linearly.
            out_features (tuple[str]): any of "res2".."res5"; later stages are not built.
            freeze_at (int): as detectron2's ResNet: 0 trains everything, 1 freezes the
                patch embedding, k >= 2 it and the stages up to ``res{k}``.
            use_act_checkpoint (bool): recompute each stage's blocks in the backward pass.
        """
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"Swin has 4 stages; got depths={depths} and num_heads={num_heads}")
        num_stages = self.stages_to_build(out_features, freeze_at, stem_name="patch embedding")
        net = TimmSwinTransformer(
            img_size=pretrain_img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            # Detection keeps the window (and its shift) fixed whatever the map size.
            always_partition=True,
            strict_img_size=False,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
        )
        self.patch_embed = net.patch_embed
        self.layers = net.layers[:num_stages]
        for stage in self.layers:
            for block in stage.blocks:
                block.__class__ = PadThenShiftBlock
            stage.grad_checkpointing = use_act_checkpoint
        self.patch_size = patch_size
        self.window_size = window_size
        self.depths = tuple(depths)

        dims = [embed_dim * 2**i for i in range(4)]
        self._add_output_norms(out_features, dims, patch_size, nn.LayerNorm)
        self._freeze(freeze_at)

    def stem_and_stages(self):
        return self.patch_embed, self.layers

    def _output_of_stage(self, index, x):
        """Normed (N, H, W, C) map -> (N, C, H, W), detectron2's layout."""
        return super()._output_of_stage(index, x).permute(0, 3, 1, 2).contiguous()

    def forward(self, x):
        """
        Args:
            x (Tensor): (N, C, H, W) images.

        Returns:
            dict[str, Tensor]: ``res{i}`` of shape (N, C_i, ceil(H / 2**i), ceil(W / 2**i)).
        """
        if x.dim() != 4:
            raise ValueError(f"Swin takes (N, C, H, W) images; got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.patch_size, 0, -height % self.patch_size))
        return self._forward_stages(self.patch_embed(x))
