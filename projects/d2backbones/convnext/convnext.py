"""ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022) as a detectron2 backbone.

The network is timm's ``ConvNeXt``, built without weights; this module adds what the
official detection code adds around it: a LayerNorm on every output stage, stage
freezing, activation checkpointing, and the detectron2 ``Backbone`` interface
(``res2``..``res5`` at strides 4..32), the output norms, freezing and interface
shared with Swin through ``HierarchicalBackbone``. Pretrained weights come only
through the checkpointer, converted by :mod:`.convert`.
"""

from functools import partial

import torch.nn.functional as F
from timm.models.convnext import ConvNeXt as TimmConvNeXt

from ..layers import LayerNorm2d
from ..modeling.hierarchical import STAGE_NAMES, HierarchicalBackbone

__all__ = ["CONVNEXT_SIZES", "ConvNeXt", "timm_stem_and_stages"]


# timm's stem: a 4 x 4 convolution of stride 4.
STEM_STRIDE = 4

# Sizes of the paper (Table 11 / the official model definitions).
CONVNEXT_SIZES = {
    "tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "large": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
}


def timm_stem_and_stages(depths, dims, in_chans, drop_path_rate, layer_scale_init_value, num_stages):
    """timm's ConvNeXt stem and its first ``num_stages`` stages, built without weights:
    the modules (and parameter names) of both the detection backbone and its SparK encoder.

    Drop path rises over the blocks of all four stages, built or not."""
    if len(depths) != 4 or len(dims) != 4:
        raise ValueError(f"ConvNeXt has 4 stages; got depths={depths} and dims={dims}")
    net = TimmConvNeXt(
        in_chans=in_chans,
        num_classes=0,
        depths=tuple(depths),
        dims=tuple(dims),
        drop_path_rate=drop_path_rate,
        ls_init_value=layer_scale_init_value,
    )
    return net.stem, net.stages[:num_stages]


class ConvNeXt(HierarchicalBackbone):
    """timm's ConvNeXt with a channels-first LayerNorm on each output stage.

    Input (N, 3, H, W) of any size; it is zero-padded on the bottom and right to a
    multiple of 32 (what a detector's image batching does anyway), so that every stage
    halves the map exactly: ``res{i}`` is (N, dims[i - 2], Hp / 2**i, Wp / 2**i) with
    Hp = 32 * ceil(H / 32), Wp = 32 * ceil(W / 32).
    Parameter names: ``stem.*``, ``stages.{i}.downsample.*``, ``stages.{i}.blocks.{j}.*``
    (timm's), and ``norm{i}.*`` for the output norms (the official detection code's).
    """

    def __init__(
        self,
        depths=(3, 3, 9, 3),
        dims=(96, 192, 384, 768),
        in_chans=3,
        drop_path_rate=0.0,
        layer_scale_init_value=1e-6,
        out_features=STAGE_NAMES,
        freeze_at=0,
        use_act_checkpoint=False,
    ):
        """
        Args:
            depths (tuple[int]): blocks per stage (4 stages).
            dims (tuple[int]): channels per stage.
            in_chans (int): input channels.
            drop_path_rate (float): stochastic depth rate of the last block, rising
                linearly from 0 over all blocks.
            layer_scale_init_value (float): initial layer scale (``gamma``).
            out_features (tuple[str]): any of "res2".."res5"; stages after the last one
                named are not built.
            freeze_at (int): as detectron2's ResNet: 0 trains everything, 1 freezes the
                stem, k >= 2 the stem and the stages up to ``res{k}``.
            use_act_checkpoint (bool): recompute each stage's blocks in the backward pass.
        """
        super().__init__()
        num_stages = self.stages_to_build(out_features, freeze_at, stem_name="stem")
        self.stem, self.stages = timm_stem_and_stages(depths, dims, in_chans, drop_path_rate, layer_scale_init_value,
                                                      num_stages)
        self._add_output_norms(out_features, dims, STEM_STRIDE, partial(LayerNorm2d, eps=1e-6))
        for stage in self.stages:
            stage.grad_checkpointing = use_act_checkpoint
        self._freeze(freeze_at)

    def stem_and_stages(self):
        return self.stem, self.stages

    def forward(self, x):
        """
        Args:
            x (Tensor): (N, C, H, W) images.

        Returns:
            dict[str, Tensor]: ``res{i}`` of shape (N, C_i, Hp / 2**i, Wp / 2**i), the
            input padded to (Hp, Wp), multiples of 32.
        """
        if x.dim() != 4:
            raise ValueError(f"ConvNeXt takes (N, C, H, W) images; got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        divisor = self.size_divisibility
        x = F.pad(x, (0, -width % divisor, 0, -height % divisor))
        return self._forward_stages(self.stem(x))
