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

from ..layers import run_token_blocks
from .vit_encoder import check_patch_grid, init_mae_encoder, mae_encoder_parts, prepend_cls_token

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
        self.patch_size = self.out_stride = patch_size
        self.out_channels = embed_dim
        self.grid = img_size // patch_size
        self.use_act_checkpoint = use_act_checkpoint
        # Fixed sin-cos with a cls slot, MAE's: the detectors' converters read it as MAE's.
        self.patch_embed, self.cls_token, self.pos_embed, self.blocks, self.norm = mae_encoder_parts(
            img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, norm_layer, drop_path_rate
        )
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, embed_dim))
        init_mae_encoder(self.patch_embed, (self.cls_token, self.mask_token), (*self.blocks, self.norm))

    def forward(self, images, mask):
        tokens = self.patch_embed(images)
        batch, rows, cols, channels = tokens.shape
        check_patch_grid((rows, cols), self.grid, self.patch_size, "the masked ViT")
        if tuple(mask.shape[1:]) != (rows, cols):
            raise ValueError(f"mask {tuple(mask.shape)} does not cover the {rows}x{cols} patch grid")
        weight = mask[..., None].to(tokens.dtype)
        tokens = tokens * (1 - weight) + self.mask_token.to(tokens.dtype) * weight
        tokens = tokens.flatten(1, 2) + self.pos_embed[:, 1:].to(tokens.dtype)
        x = run_token_blocks(self.blocks, prepend_cls_token(tokens, self.cls_token, self.pos_embed),
                             self.use_act_checkpoint)
        x = self.norm(x)[:, 1:]
        return x.transpose(1, 2).reshape(batch, channels, rows, cols)
