"""Swin with a mask token: the encoder of SimMIM (and MaskFeat) on Swin.

It is this family's detection backbone, built with one output stage (the last), plus
SimMIM's ``mask_token``: the patch embeddings (after their norm) of masked tokens are
replaced by it, and the stages run on the whole map. Its parameter names are the
detection backbone's (``patch_embed.*``, ``layers.{i}.*``, ``norm{i}`` of the output
stage) plus ``mask_token``, so the ``mask_token_mim`` converter in :mod:`.convert`
gives a detector everything but its other output norms and the pyramid.

It meets :class:`d2backbones.pretrain.MaskedEncoder`: give it to
:class:`~d2backbones.pretrain.MaskTokenPretrainer` as ``encoder`` in a config.
"""
import torch
import torch.nn as nn

from ..modeling.hierarchical import STAGE_NAMES
from .swin import SwinTransformer

__all__ = ["MaskedSwinTransformer"]


class MaskedSwinTransformer(SwinTransformer):
    """Swin's stages on a masked patch embedding, up to ``out_feature``.

    Shapes: images (B, C, H, W) and mask (B, H / patch_size, W / patch_size), 1 at masked
    tokens -> (B, out_channels, H / out_stride, W / out_stride), the normed output stage.
    H and W must be multiples of ``out_stride`` (whole patch merges).
    """

    def __init__(self, *, out_feature="res5", drop_path_rate=0.0, **kwargs):
        """
        Args:
            out_feature (str): the last stage to build and return ("res5" for Swin-B's
                stride 32; "res4" for a three-stage Swin such as configs/demo/swin_tiny.py).
            drop_path_rate (float): SimMIM's Swin pretraining uses 0.
            kwargs: as :class:`~.swin.SwinTransformer` (sizes, ``window_size``, ...).
        """
        if out_feature not in STAGE_NAMES:
            raise ValueError(f"out_feature must be one of {STAGE_NAMES}; got {out_feature!r}")
        super().__init__(out_features=(out_feature,), drop_path_rate=drop_path_rate, freeze_at=0, **kwargs)
        self.out_feature = out_feature
        self.out_stride = self._out_feature_strides[out_feature]
        self.out_channels = self._out_feature_channels[out_feature]
        embed_dim = self.patch_embed.proj.out_channels
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, images, mask):
        height, width = images.shape[-2:]
        if height % self.out_stride or width % self.out_stride:
            raise ValueError(f"the masked Swin needs inputs that are multiples of its stride {self.out_stride}; "
                             f"got {height}x{width}")
        tokens = self.patch_embed(images)
        if tuple(mask.shape[1:]) != tuple(tokens.shape[1:3]):
            raise ValueError(f"mask {tuple(mask.shape)} does not cover the {tuple(tokens.shape[1:3])} token grid")
        weight = mask[..., None].to(tokens.dtype)
        tokens = tokens * (1 - weight) + self.mask_token.to(tokens.dtype) * weight
        return self._forward_stages(tokens)[self.out_feature]
