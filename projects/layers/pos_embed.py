"""Absolute position embeddings stored at the pretraining grid, resized to the input grid."""
import math

import torch.nn.functional as F


def resize_abs_pos_embed(pos_embed, has_cls_token, hw):
    """Drop the cls-token slot and resize a square position-embedding grid bicubically.

    Args:
        pos_embed (Tensor): (1, [1 +] S * S, C), as stored by MAE / timm / ViTDet.
        has_cls_token (bool): whether the first slot belongs to a cls token.
        hw (tuple[int, int]): target token grid (H, W).

    Returns:
        Tensor: (1, H, W, C).
    """
    if has_cls_token:
        pos_embed = pos_embed[:, 1:]
    num_positions = pos_embed.shape[1]
    side = math.isqrt(num_positions)
    if side * side != num_positions:
        raise ValueError(
            f"position embedding has {num_positions} grid positions (cls token "
            f"{'dropped' if has_cls_token else 'absent'}), which is not a square grid"
        )
    grid = pos_embed.reshape(1, side, side, -1)
    if (side, side) == tuple(hw):
        return grid
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=tuple(hw), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1)
