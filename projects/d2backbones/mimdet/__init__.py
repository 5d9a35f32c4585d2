"""MIMDet: ConvStem + partial-token MAE ViT encoder + small decoder, for an FPN."""
from .backbone import MIMDetBackbone, MIMDetDecoder, MIMDetEncoder
from .build import add_mimdet_config, build_mimdet_fpn_backbone
from .conv_stem import ConvStem
from .convert import (
    convert_mae_checkpoint,
    convert_mae_full_checkpoint,
    convert_mimdet_checkpoint,
    is_mimdet_checkpoint,
)
from .detector import PaddingAwareRCNN, sync_batch_norm
from .lr_decay import mimdet_lr_factor
from .token_sampling import num_kept_tokens, sample_kept_tokens

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
    "is_mimdet_checkpoint",
    "mimdet_lr_factor",
    "num_kept_tokens",
    "sample_kept_tokens",
    "sync_batch_norm",
]
