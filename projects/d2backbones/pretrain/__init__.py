"""Masked-image-modeling pretraining as LazyConfig models that ``tools/train_net.py``
trains like any detector (a loss dict from ``list[dict]`` batches).

- :class:`ImagePretrainer`: the detectron2 input side shared by every method.
- :class:`MaskedAutoencoderViT`: MAE, with MAE's parameter names.
- :class:`SparK`: SparK for a sparse CNN encoder (:mod:`.sparse_encoder`), ConvNeXt's in its family.
- :class:`MaskTokenPretrainer`: MaskFeat and SimMIM, a mask token inside any
  :class:`MaskedEncoder` (:class:`MaskTokenViT` here, Swin's in its family).
- :mod:`.targets`: what is predicted per patch (pixels, normalised pixels, HOG), pluggable.

This package imports no backbone family: the families read its checkpoints through
their MAE converters (:mod:`d2backbones.checkpoint`).
"""
from . import convert, mask_token_checkpoint, spark_checkpoint
from .base import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, ImagePretrainer
from .hog import HOGTarget
from .loss import masked_patch_l1, masked_patch_mse
from .mae import MaskedAutoencoderViT
from .mask_generators import BlockMask, RandomMask
from .mask_token import MaskedEncoder, MaskTokenPretrainer
from .masked_vit import MaskTokenViT
from .mim_heads import LinearHead, PixelShuffleHead
from .spark import SparK
from .targets import PixelTarget, build_target, patchify, register_target, registered_targets, unpatchify

__all__ = [
    "IMAGENET_PIXEL_MEAN",
    "IMAGENET_PIXEL_STD",
    "BlockMask",
    "HOGTarget",
    "ImagePretrainer",
    "LinearHead",
    "MaskTokenPretrainer",
    "MaskTokenViT",
    "MaskedAutoencoderViT",
    "MaskedEncoder",
    "PixelShuffleHead",
    "PixelTarget",
    "RandomMask",
    "SparK",
    "build_target",
    "convert",
    "mask_token_checkpoint",
    "masked_patch_l1",
    "masked_patch_mse",
    "patchify",
    "register_target",
    "registered_targets",
    "spark_checkpoint",
    "unpatchify",
]
