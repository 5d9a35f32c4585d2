"""ConvNeXt run as a sparse CNN, the encoder of SparK pretraining (:class:`d2backbones.pretrain.SparK`).

The modules are timm's, built by the same function as :class:`~.convnext.ConvNeXt`'s,
so the parameter names (``stem.*``, ``stages.{i}.downsample.*``,
``stages.{i}.blocks.{j}.*``) are the detection backbone's and the pretrained encoder
loads into it. Only the forward differs: it emulates submanifold sparse convolution
densely, as SparK's ``encoder.py`` does. With ``m`` the visible mask at a map's
resolution (the stride-``downsample_ratio`` mask repeated over each cell):

- every convolution's output is multiplied by ``m``: the 4 x 4 stem, the 2 x 2
  downsampling and the 7 x 7 depthwise convolutions. The stem and downsampling
  kernels tile their cell exactly, and a depthwise kernel that reaches into a masked
  cell reads the zeros left there, so no visible output depends on a masked pixel;
- each block's residual branch (depthwise conv, LayerNorm, MLP, layer scale) is
  multiplied by ``m`` before it is added, so a block's output is zero where masked;
- the norms are all LayerNorms over the channels of one position (``LayerNorm2d`` in
  the stem and before each downsampling, channels-last ``LayerNorm`` in the blocks):
  their statistics never mix positions, so they use visible positions only by
  construction. What they write at a masked position is their bias; the stem's and
  the downsampling norms' outputs are multiplied by ``m`` (masked cells hold zeros,
  as a sparse tensor has no entry there), the blocks' by the branch mask above.
  A BatchNorm would need statistics over the visible positions only (SparK's
  ``SparseBatchNorm2d``); ConvNeXt has none.

With every position visible the forward is the detection backbone's stem and stages,
exactly (the masks are all ones). The detection-only parts, the output norms
``norm{i}``, are not built.
"""
import torch.nn as nn

from ..layers import upsample_mask
from .convnext import STEM_STRIDE, timm_stem_and_stages

__all__ = ["SparseConvNeXt"]


class SparseConvNeXt(nn.Module):
    """A ConvNeXt encoder for SparK: ``forward(images, visible) -> [stage outputs]``.

    Follows :mod:`d2backbones.pretrain.sparse_encoder`: outputs at strides 4, 8, ...,
    ``downsample_ratio`` = 4 * 2**(num_stages - 1), zero at masked positions.
    """

    def __init__(
        self,
        depths=(3, 3, 9, 3),
        dims=(96, 192, 384, 768),
        in_chans=3,
        drop_path_rate=0.0,
        layer_scale_init_value=1e-6,
        num_stages=4,
    ):
        """
        Args:
            depths, dims, in_chans, drop_path_rate, layer_scale_init_value: as
                :class:`~.convnext.ConvNeXt` (drop path rises over all four stages' blocks).
            num_stages (int): stages to build, 1..4, as the detector's last output
                (``res{num_stages + 1}``) needs them; the last one's stride is the
                mask cell.
        """
        super().__init__()
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be in 1..4, got {num_stages}")
        self.stem, self.stages = timm_stem_and_stages(depths, dims, in_chans, drop_path_rate, layer_scale_init_value,
                                                      num_stages)
        self.out_channels = list(dims[:num_stages])
        self.out_strides = [STEM_STRIDE * 2**i for i in range(num_stages)]
        self.downsample_ratio = self.out_strides[-1]

    def forward(self, images, visible):
        """
        Args:
            images (Tensor): (B, C, H, W), H and W multiples of ``downsample_ratio``.
            visible (Tensor): (B, H / r, W / r) bool, True at the cells to encode.

        Returns:
            list[Tensor]: stage ``i``'s output, (B, dims[i], H / s_i, W / s_i) at
            s_i = 4 * 2**i, zero at masked positions.
        """
        ratio = self.downsample_ratio
        if images.shape[-2] % ratio or images.shape[-1] % ratio:
            raise ValueError(f"SparseConvNeXt needs H and W multiples of {ratio}, got {tuple(images.shape[-2:])}")
        if tuple(visible.shape[-2:]) != (images.shape[-2] // ratio, images.shape[-1] // ratio):
            raise ValueError(f"visible mask {tuple(visible.shape)} is not the {ratio}-pixel grid of images "
                             f"{tuple(images.shape)}")
        visible = visible[:, None].to(images.dtype)
        # The stem's 4 x 4 kernels tile the cells, so this only makes sure that no
        # masked pixel enters at all (SparK masks the input too).
        x = images * upsample_mask(visible, ratio)
        stem_conv, stem_norm = self.stem
        m = upsample_mask(visible, ratio // STEM_STRIDE)
        x = stem_norm(stem_conv(x) * m) * m
        outputs = []
        for index, stage in enumerate(self.stages):
            m = upsample_mask(visible, ratio // self.out_strides[index])
            if not isinstance(stage.downsample, nn.Identity):
                norm, conv = stage.downsample
                x = conv(norm(x) * upsample_mask(m, 2)) * m
            for block in stage.blocks:
                x = self._block(block, x, m)
            outputs.append(x)
        return outputs

    @staticmethod
    def _block(block, x, m):
        """timm's ``ConvNeXtBlock.forward`` with the depthwise output and the branch masked."""
        branch = block.conv_dw(x) * m
        branch = block.mlp(block.norm(branch.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if block.gamma is not None:
            branch = branch * block.gamma.reshape(1, -1, 1, 1)
        return block.shortcut(x) + block.drop_path(branch * m)
