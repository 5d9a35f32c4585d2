"""Masked-image-modeling pretraining as LazyConfig models that ``tools/train_net.py``
trains like any detector (a loss dict from ``list[dict]`` batches).

- :class:`ImagePretrainer`: the detectron2 input side shared by every method.
- :class:`MaskedAutoencoderViT`: MAE, with MAE's parameter names.
- :class:`SparK`: SparK for a sparse CNN encoder (:mod:`.sparse_encoder`), ConvNeXt's in its family.
- :mod:`.targets`: what is predicted per patch (pixels, normalised pixels), pluggable.

This package imports no backbone family: the families read its checkpoints through
their MAE converters (:mod:`d2backbones.checkpoint`).
"""
from . import convert, spark_checkpoint
from .base import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, ImagePretrainer
from .loss import masked_patch_mse
from .mae import MaskedAutoencoderViT
from .spark import SparK
from .targets import PixelTarget, build_target, patchify, register_target, registered_targets, unpatchify

__all__ = [
    "IMAGENET_PIXEL_MEAN",
    "IMAGENET_PIXEL_STD",
    "ImagePretrainer",
    "MaskedAutoencoderViT",
    "PixelTarget",
    "SparK",
    "build_target",
    "convert",
    "masked_patch_mse",
    "patchify",
    "register_target",
    "registered_targets",
    "spark_checkpoint",
    "unpatchify",
]
