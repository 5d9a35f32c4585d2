"""Blocks shared by every backbone family: written once, used by all."""
from .attention import Attention, get_rel_pos
from .lr_decay import layer_decay_factor
from .mlp import Mlp
from .norm import LayerNorm2d, get_norm
from .patch_embed import PatchEmbed
from .pos_embed import resize_abs_pos_embed, resize_rel_pos_bias_table, sincos_pos_embed_2d
from .vit_block import Block, ResBottleneckBlock
from .windows import window_partition, window_unpartition

__all__ = [
    "Attention",
    "Block",
    "LayerNorm2d",
    "Mlp",
    "PatchEmbed",
    "ResBottleneckBlock",
    "get_norm",
    "get_rel_pos",
    "layer_decay_factor",
    "resize_abs_pos_embed",
    "resize_rel_pos_bias_table",
    "sincos_pos_embed_2d",
    "window_partition",
    "window_unpartition",
]
