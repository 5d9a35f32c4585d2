"""Blocks shared by every backbone family: written once, used by all."""
from .attention import Attention, get_rel_pos
from .lr_decay import (
    convnext_layer_id,
    convnext_lr_decay_rate,
    layer_decay_factor,
    swin_layer_id,
    swin_lr_decay_rate,
    vit_layer_id,
    vit_lr_decay_rate,
)
from .mlp import Mlp
from .norm import LayerNorm2d, get_norm
from .patch_embed import PatchEmbed
from .pos_embed import resize_abs_pos_embed, resize_rel_pos_bias_table
from .windows import window_partition, window_unpartition

__all__ = [
    "Attention",
    "LayerNorm2d",
    "Mlp",
    "PatchEmbed",
    "convnext_layer_id",
    "convnext_lr_decay_rate",
    "get_norm",
    "get_rel_pos",
    "layer_decay_factor",
    "resize_abs_pos_embed",
    "resize_rel_pos_bias_table",
    "swin_layer_id",
    "swin_lr_decay_rate",
    "vit_layer_id",
    "vit_lr_decay_rate",
    "window_partition",
    "window_unpartition",
]
