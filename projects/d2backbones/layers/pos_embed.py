"""Absolute position embeddings: MAE's fixed sine-cosine grid, and stored grids resized to the input grid."""
import math

import torch
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
    # A trace keeps only the branch it took, so it always resizes (at the stored size
    # an exact copy): a trace at that size then still serves every other grid.
    if (side, side) == tuple(hw) and not torch.jit.is_tracing():
        return grid
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=tuple(hw), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1)


def resize_rel_pos_bias_table(table, window_size):
    """Resize a Swin relative-position bias table to another window size, bicubically
    over its (2 * Wh - 1) x (2 * Ww - 1) grid of relative offsets.

    Args:
        table (Tensor): ((2 * S - 1) ** 2, num_heads) for a square pretraining window S.
        window_size (tuple[int, int]): target window (Wh, Ww).

    Returns:
        Tensor: ((2 * Wh - 1) * (2 * Ww - 1), num_heads).
    """
    num_offsets, num_heads = table.shape
    side = math.isqrt(num_offsets)
    if side * side != num_offsets or side % 2 == 0:
        raise ValueError(
            f"relative position bias table has {num_offsets} rows, which is not (2 * S - 1) ** 2 "
            "for a square window S"
        )
    target = (2 * window_size[0] - 1, 2 * window_size[1] - 1)
    if (side, side) == target:
        return table
    grid = table.transpose(0, 1).reshape(1, num_heads, side, side)
    grid = F.interpolate(grid, size=target, mode="bicubic", align_corners=False)
    return grid.reshape(num_heads, -1).transpose(0, 1).contiguous()


def sincos_pos_embed_2d(embed_dim, grid_size):
    """Fixed 2-D sine-cosine position embedding of MAE, with a zero cls slot first.

    The first half of the channels encodes the column, the second half the row, each
    as ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000 ** (-k / (C / 4))``.

    Returns:
        Tensor: (1, 1 + grid_size ** 2, embed_dim).
    """
    if embed_dim % 4:
        raise ValueError(f"a 2-D sine-cosine embedding needs embed_dim divisible by 4, got {embed_dim}")
    quarter = embed_dim // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")

    def encode(positions):
        angles = positions.reshape(-1, 1) * frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    grid = torch.cat([encode(cols), encode(rows)], dim=1)
    return torch.cat([grid.new_zeros(1, embed_dim), grid]).float()[None]
