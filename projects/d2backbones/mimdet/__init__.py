"""MIMDet: ConvStem + partial-token MAE ViT encoder + small decoder, for an FPN."""
from .detector import PaddingAwareRCNN, add_mimdet_config, build_mimdet_fpn_backbone, sync_batch_norm
from .mimdet import (
    ConvStem,
    MIMDetBackbone,
    MIMDetDecoder,
    MIMDetEncoder,
    convert_mae_checkpoint,
    convert_mae_full_checkpoint,
    convert_mimdet_checkpoint,
    is_mae_checkpoint,
    is_mae_full_checkpoint,
    is_mimdet_checkpoint,
    mimdet_lr_factor,
    num_kept_tokens,
    sample_kept_tokens,
    sincos_pos_embed_2d,
)

__all__ = [
    "ConvStem",
    "MIMDetBackbone",
    "MIMDetDecoder",
    "MIMDetEncoder",
    "PaddingAwareRCNN",
    "add_mimdet_config",
    "build_mimdet_fpn_backbone",
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_mimdet_checkpoint",
    "is_mae_checkpoint",
    "is_mae_full_checkpoint",
    "is_mimdet_checkpoint",
    "mimdet_lr_factor",
    "num_kept_tokens",
    "sample_kept_tokens",
    "sincos_pos_embed_2d",
    "sync_batch_norm",
]
