"""Blocks shared by every backbone family: written once, used by all."""
from .act_checkpoint import recompute_in_backward
from .attention import Attention, get_rel_pos
from .lr_decay import layer_decay_factor
from .masking import (
    block_masking,
    num_visible_tokens,
    random_masking,
    random_patch_masking,
    unshuffle_tokens,
    upsample_mask,
    visible_from_noise,
)
from .mlp import Mlp
from .norm import LayerNorm2d, get_norm
from .patch_embed import PatchEmbed
from .pos_embed import resize_abs_pos_embed, resize_rel_pos_bias_table, sincos_pos_embed_2d
from .token_sequence import run_token_blocks
from .vit_block import Block, ResBottleneckBlock
from .weight_init import mae_weight_init
from .windows import window_partition, window_unpartition

__all__ = [
    "Attention",
    "Block",
    "LayerNorm2d",
    "Mlp",
    "PatchEmbed",
    "ResBottleneckBlock",
    "block_masking",
    "get_norm",
    "get_rel_pos",
    "layer_decay_factor",
    "mae_weight_init",
    "num_visible_tokens",
    "random_masking",
    "random_patch_masking",
    "recompute_in_backward",
    "resize_abs_pos_embed",
    "resize_rel_pos_bias_table",
    "run_token_blocks",
    "sincos_pos_embed_2d",
    "unshuffle_tokens",
    "upsample_mask",
    "visible_from_noise",
    "window_partition",
    "window_unpartition",
]
