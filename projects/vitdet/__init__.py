"""ViTDet: plain ViT + simple feature pyramid."""
from ..layers import vit_lr_decay_rate
from .build import add_vitdet_config, build_vitdet_backbone
from .simple_feature_pyramid import SimpleFeaturePyramid
from .vit import ViT

__all__ = ["ViT", "SimpleFeaturePyramid", "add_vitdet_config", "build_vitdet_backbone", "vit_lr_decay_rate"]
