"""ConvNeXt backbones (timm's network) for detectron2, with their checkpoint converters."""
from .build import add_convnext_config, build_convnext_backbone, build_convnext_fpn_backbone
from .convert import (
    convert_official_convnext_checkpoint,
    convert_spark_convnext_checkpoint,
    convert_timm_convnext_checkpoint,
    is_official_convnext_checkpoint,
    is_timm_convnext_checkpoint,
)
from .convnext import CONVNEXT_SIZES, ConvNeXt
from .lr_decay import convnext_layer_id, convnext_lr_decay_rate
from .sparse import SparseConvNeXt

__all__ = [
    "CONVNEXT_SIZES",
    "ConvNeXt",
    "SparseConvNeXt",
    "add_convnext_config",
    "build_convnext_backbone",
    "build_convnext_fpn_backbone",
    "convert_official_convnext_checkpoint",
    "convert_spark_convnext_checkpoint",
    "convert_timm_convnext_checkpoint",
    "convnext_layer_id",
    "convnext_lr_decay_rate",
    "is_official_convnext_checkpoint",
    "is_timm_convnext_checkpoint",
]
