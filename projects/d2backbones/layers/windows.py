"""Non-overlapping window partition for windowed attention."""
import torch.nn.functional as F


def window_partition(x, window_size):
    """Split a token map into windows, zero-padding the bottom/right edge first.

    Args:
        x (Tensor): (B, H, W, C).
        window_size (int): side of each square window.

    Returns:
        windows (Tensor): (B * num_windows, window_size, window_size, C).
        padded_hw (tuple[int, int]): (Hp, Wp), the padded map size.
    """
    batch, height, width, channels = x.shape
    pad_h = -height % window_size
    pad_w = -width % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window_size, window_size, padded_w // window_size, window_size, channels)
    windows = x.transpose(2, 3).reshape(-1, window_size, window_size, channels)
    return windows, (padded_h, padded_w)


def window_unpartition(windows, window_size, padded_hw, hw):
    """Inverse of :func:`window_partition`, cropping the padding away.

    Args:
        windows (Tensor): (B * num_windows, window_size, window_size, C).
        window_size (int): side of each square window.
        padded_hw (tuple[int, int]): (Hp, Wp) returned by :func:`window_partition`.
        hw (tuple[int, int]): (H, W) before padding.

    Returns:
        Tensor: (B, H, W, C).
    """
    padded_h, padded_w = padded_hw
    height, width = hw
    rows, cols = padded_h // window_size, padded_w // window_size
    batch = windows.shape[0] // (rows * cols)
    x = windows.view(batch, rows, cols, window_size, window_size, -1)
    x = x.transpose(2, 3).reshape(batch, padded_h, padded_w, -1)
    if padded_h != height or padded_w != width:
        x = x[:, :height, :width]
    return x
