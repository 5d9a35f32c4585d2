"""ConvNeXt backbones (timm's network) for detectron2, with their checkpoint converters."""
from ..layers import convnext_lr_decay_rate
from .convnext import (
    CONVNEXT_SIZES,
    ConvNeXt,
    add_convnext_config,
    build_convnext_backbone,
    build_convnext_fpn_backbone,
    convert_official_convnext_checkpoint,
    convert_timm_convnext_checkpoint,
    is_official_convnext_checkpoint,
    is_timm_convnext_checkpoint,
)

__all__ = [
    "CONVNEXT_SIZES",
    "ConvNeXt",
    "add_convnext_config",
    "build_convnext_backbone",
    "build_convnext_fpn_backbone",
    "convert_official_convnext_checkpoint",
    "convert_timm_convnext_checkpoint",
    "convnext_lr_decay_rate",
    "is_official_convnext_checkpoint",
    "is_timm_convnext_checkpoint",
]
