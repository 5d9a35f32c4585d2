"""SparK's light UNet decoder: from the coarsest feature map back to pixels.

``log2(upsample_ratio)`` blocks, each a 2x transposed convolution then two 3 x 3
convolutions with norms (SparK's ``UNetBlock``). Block ``i`` runs at width
``width / 2**i``; before it, the densified encoder map of that scale (coarsest first)
is added, for as many scales as the encoder gives (SparK's ``LightDecoder``, whose
shape this keeps: 5 blocks, 768 -> 24 channels, for a stride-32 CNN). A 1 x 1
convolution gives the pixels.
"""
import math

import torch.nn as nn

from ..layers import get_norm

__all__ = ["LightDecoder", "UNetBlock"]


class UNetBlock(nn.Module):
    """(B, C_in, h, w) -> (B, C_out, 2h, 2w): 2x up-sampling, then conv-norm-ReLU6-conv-norm."""

    def __init__(self, in_channels, out_channels, norm="BN"):
        super().__init__()
        self.up_sample = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=4, stride=2, padding=1, bias=True)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1, bias=False),
            get_norm(norm, in_channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            get_norm(norm, out_channels),
        )

    def forward(self, x):
        return self.conv(self.up_sample(x))


class LightDecoder(nn.Module):
    """Multi-scale features, coarsest first -> (B, out_channels, H, W) at full resolution.

    Parameter names are SparK's (``dec.{i}.up_sample``, ``dec.{i}.conv.*``, ``proj``).
    """

    def __init__(self, upsample_ratio, width=768, out_channels=3, norm="BN"):
        """
        Args:
            upsample_ratio (int): stride of the coarsest input, a power of 2.
            width (int): channels of the first block, halved at each block.
            out_channels (int): predicted channels per pixel.
            norm (str): the blocks' norm, a detectron2 ``get_norm`` name
                ("BN"; "SyncBN" across GPUs, as SparK trains).
        """
        super().__init__()
        num_blocks = round(math.log2(upsample_ratio))
        if 2**num_blocks != upsample_ratio:
            raise ValueError(f"the decoder upsamples by powers of 2; got upsample_ratio={upsample_ratio}")
        if width % 2**num_blocks:
            raise ValueError(f"decoder width {width} must be divisible by 2**{num_blocks} (halved at each block)")
        self.width = width
        self.channels = [width // 2**i for i in range(num_blocks + 1)]
        self.dec = nn.ModuleList(UNetBlock(a, b, norm) for a, b in zip(self.channels[:-1], self.channels[1:]))
        self.proj = nn.Conv2d(self.channels[-1], out_channels, kernel_size=1)
        self._init_weights()

    def _init_weights(self):
        # SparK's init: truncated normal 0.02 for the convs, He (fan-out) for the transposed
        # ones, zero biases, unit norms.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                if isinstance(module, nn.Conv2d):
                    nn.init.trunc_normal_(module.weight, std=0.02)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.modules.batchnorm._NormBase):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features):
        """
        Args:
            features (list[Tensor]): ``features[i]`` (B, channels[i], h * 2**i, w * 2**i),
                coarsest first; at most one per block.

        Returns:
            Tensor: (B, out_channels, h * 2**num_blocks, w * 2**num_blocks).
        """
        if len(features) > len(self.dec):
            raise ValueError(f"the decoder has {len(self.dec)} blocks but got {len(features)} feature maps")
        x = features[0]
        for index, block in enumerate(self.dec):
            if 0 < index < len(features):
                x = x + features[index]
            x = block(x)
        return self.proj(x)
