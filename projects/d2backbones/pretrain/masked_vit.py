"""A plain ViT that takes a mask: the encoder of MaskFeat and SimMIM on ViT.

Unlike MAE's encoder it keeps every token: the patch embeddings of masked patches
are replaced by a learned ``mask_token`` before the position embedding is added, and
all tokens (with a cls token) run through global-attention blocks.

Parameter names are MAE's encoder's (``patch_embed.proj``, ``cls_token``,
``pos_embed`` with a cls slot, ``blocks.N.*``, ``norm``) plus ``mask_token``, so under
:class:`~.mask_token.MaskTokenPretrainer` (``encoder.*``, which MAE's reader strips
as a release wrapper) the checkpoint is an MAE encoder checkpoint to the ViTDet and
MIMDet loaders.
"""
from functools import partial

import torch
import torch.nn as nn

from ..layers import Block, PatchEmbed, mae_weight_init, run_token_blocks, sincos_pos_embed_2d

__all__ = ["MaskTokenViT"]


class MaskTokenViT(nn.Module):
    """ViT encoder with a mask token, the :class:`~.mask_token.MaskedEncoder` of a plain ViT.

    Shapes: images (B, C, img_size, img_size) and mask (B, S, S), S = img_size / patch_size,
    1 at masked patches -> (B, embed_dim, S, S), the normed patch tokens (cls dropped).
    """

    def __init__(
        self,
        *,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        drop_path_rate=0.0,
        use_act_checkpoint=False,
    ):
        """
        Args:
            img_size (int): side of the square input; ``pos_embed`` is fixed at its grid.
            drop_path_rate (float): stochastic depth of the last block, rising linearly
                from 0 (SimMIM ViT-B: 0.1; MaskFeat: 0).
            use_act_checkpoint (bool): recompute each block in the backward pass.
            Others as MAE's encoder.
        """
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = self.out_stride = patch_size
        self.out_channels = embed_dim
        self.grid = img_size // patch_size
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed((patch_size, patch_size), (patch_size, patch_size), in_chans=in_chans,
                                      embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, embed_dim))
        # Fixed sin-cos with a cls slot, MAE's: the detectors' converters read it as MAE's.
        self.pos_embed = nn.Parameter(sincos_pos_embed_2d(embed_dim, self.grid), requires_grad=False)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=rate, norm_layer=norm_layer)
            for rate in rates
        )
        self.norm = norm_layer(embed_dim)
        self._init_weights()

    def _init_weights(self):
        nn.init.xavier_uniform_(self.patch_embed.proj.weight.view(self.patch_embed.proj.weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in (*self.blocks, self.norm):
            module.apply(mae_weight_init)

    def forward(self, images, mask):
        tokens = self.patch_embed(images)
        batch, rows, cols, channels = tokens.shape
        if (rows, cols) != (self.grid, self.grid):
            size = self.grid * self.patch_size
            raise ValueError(f"the masked ViT got a {rows}x{cols} patch grid but pos_embed is fixed at "
                             f"{self.grid}x{self.grid}: feed {size}x{size} crops or set img_size")
        if tuple(mask.shape[1:]) != (rows, cols):
            raise ValueError(f"mask {tuple(mask.shape)} does not cover the {rows}x{cols} patch grid")
        weight = mask[..., None].to(tokens.dtype)
        tokens = tokens * (1 - weight) + self.mask_token.to(tokens.dtype) * weight
        tokens = tokens.flatten(1, 2) + self.pos_embed[:, 1:].to(tokens.dtype)
        cls = (self.cls_token + self.pos_embed[:, :1]).to(tokens.dtype).expand(batch, -1, -1)
        x = run_token_blocks(self.blocks, torch.cat([cls, tokens], dim=1), self.use_act_checkpoint)
        x = self.norm(x)[:, 1:]
        return x.transpose(1, 2).reshape(batch, channels, rows, cols)
