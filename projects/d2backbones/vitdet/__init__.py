"""ViTDet: plain ViT + simple feature pyramid."""
from ..layers import vit_lr_decay_rate
from .build import add_vitdet_config, build_vitdet_backbone
from .convert import (
    convert_mae_checkpoint,
    convert_mae_full_checkpoint,
    convert_timm_vit_checkpoint,
    convert_vitdet_zoo_checkpoint,
    is_mae_checkpoint,
    is_mae_full_checkpoint,
    is_timm_vit_checkpoint,
    is_vitdet_zoo_checkpoint,
)
from .simple_feature_pyramid import SimpleFeaturePyramid
from .vit import ViT

__all__ = [
    "ViT",
    "SimpleFeaturePyramid",
    "add_vitdet_config",
    "build_vitdet_backbone",
    "vit_lr_decay_rate",
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_timm_vit_checkpoint",
    "convert_vitdet_zoo_checkpoint",
    "is_mae_checkpoint",
    "is_mae_full_checkpoint",
    "is_timm_vit_checkpoint",
    "is_vitdet_zoo_checkpoint",
]
