"""Swin Transformer backbones (timm's network) for detectron2, with their checkpoint converters."""
from .build import add_swin_config, build_swin_backbone, build_swin_fpn_backbone
from .convert import (
    convert_detectron2_swin_checkpoint,
    convert_mask_token_swin_checkpoint,
    convert_official_swin_checkpoint,
    convert_timm_swin_checkpoint,
    is_detectron2_swin_checkpoint,
    is_official_swin_checkpoint,
    is_timm_swin_checkpoint,
)
from .lr_decay import swin_layer_id, swin_lr_decay_rate
from .masked import MaskedSwinTransformer
from .swin import SWIN_SIZES, PadThenShiftBlock, SwinTransformer

__all__ = [
    "MaskedSwinTransformer",
    "SWIN_SIZES",
    "PadThenShiftBlock",
    "SwinTransformer",
    "add_swin_config",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
    "convert_detectron2_swin_checkpoint",
    "convert_mask_token_swin_checkpoint",
    "convert_official_swin_checkpoint",
    "convert_timm_swin_checkpoint",
    "is_detectron2_swin_checkpoint",
    "is_official_swin_checkpoint",
    "is_timm_swin_checkpoint",
    "swin_layer_id",
    "swin_lr_decay_rate",
]
