"""Running the (B, H, W, C) ViT blocks on a token sequence that has no grid."""
from .act_checkpoint import recompute_in_backward

__all__ = ["run_token_blocks"]


def run_token_blocks(blocks, tokens, use_act_checkpoint=False):
    """Apply :class:`~d2backbones.layers.Block` s with global attention to (B, N, C) tokens.

    The blocks work on (B, H, W, C) maps; a subset of tokens (the visible ones of
    masked image modeling, a cls token in front) runs as a 1 x N map, which global
    attention without rel-pos treats exactly as a sequence.

    Returns:
        Tensor: (B, N, C).
    """
    x = tokens[:, None]
    for block in blocks:
        x = recompute_in_backward(block, block, x) if use_act_checkpoint else block(x)
    return x[:, 0]
