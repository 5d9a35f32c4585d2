"""Non-overlapping patch embedding."""
import torch.nn as nn


class PatchEmbed(nn.Module):
    """Image to patch tokens by a strided convolution.

    Shapes: (N, in_chans, H, W) -> (N, H / stride, W / stride, embed_dim), channels last,
    which is the layout every ViT block works in.
    """

    def __init__(self, kernel_size=(16, 16), stride=(16, 16), padding=(0, 0), in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)
