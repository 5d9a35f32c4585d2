"""ViTDet: plain ViT + simple feature pyramid."""
from .build import add_vitdet_config, build_vitdet_backbone
from .convert import (
    convert_mae_checkpoint,
    convert_mae_full_checkpoint,
    convert_timm_vit_checkpoint,
    convert_vitdet_zoo_checkpoint,
    is_timm_vit_checkpoint,
    is_vitdet_zoo_checkpoint,
)
from .lr_decay import vit_layer_id, vit_lr_decay_rate
from .simple_feature_pyramid import SimpleFeaturePyramid
from .vit import ViT

__all__ = [
    "ViT",
    "SimpleFeaturePyramid",
    "add_vitdet_config",
    "build_vitdet_backbone",
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_timm_vit_checkpoint",
    "convert_vitdet_zoo_checkpoint",
    "is_timm_vit_checkpoint",
    "is_vitdet_zoo_checkpoint",
    "vit_layer_id",
    "vit_lr_decay_rate",
]
