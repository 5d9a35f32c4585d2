"""Simple feature pyramid of ViTDet: P2-P6 from the single stride-16 ViT map."""
import math

import torch.nn as nn
from detectron2.layers import Conv2d
from detectron2.modeling import Backbone

from ..layers import get_norm

__all__ = ["SimpleFeaturePyramid"]


def _scale_layers(scale, dim, norm):
    """Resampling layers for one pyramid level; returns (layers, output channels)."""
    if scale == 4.0:
        return [
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
            get_norm(norm, dim // 2),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
        ], dim // 4
    if scale == 2.0:
        return [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)], dim // 2
    if scale == 1.0:
        return [], dim
    if scale == 0.5:
        return [nn.MaxPool2d(kernel_size=2, stride=2)], dim
    raise ValueError(f"scale_factor={scale} is not supported; use 4.0, 2.0, 1.0 or 0.5")


class SimpleFeaturePyramid(Backbone):
    """Builds a multi-scale pyramid from the last feature map of a plain backbone.

    Arguments and state-dict keys (``simfp_<stage>.<i>``) match detectron2's
    ``SimpleFeaturePyramid``. Unlike detectron2's (its issue #4676), the
    ``padding_constraints`` spell ``size_divisibility`` correctly, so inputs are
    padded to a multiple of the coarsest stride even without ``square_pad``.

    Input (N, 3, H, W); output ``{"p2": (N, out_channels, H/4, W/4), ..., "p6": ...}``.
    """

    def __init__(self, net, in_feature, out_channels, scale_factors, top_block=None, norm="LN", square_pad=0):
        """
        Args:
            net (Backbone): the plain backbone, e.g. :class:`ViT`.
            in_feature (str): name of ``net``'s output to build the pyramid from.
            out_channels (int): channels of every pyramid level.
            scale_factors (list[float]): resampling of each level relative to the input map.
            top_block (nn.Module or None): extra coarser levels, e.g. ``LastLevelMaxPool``.
            norm (str): norm of the pyramid convs ("LN" for ViTDet, "" for none).
            square_pad (int): pad every input to this square size (0 disables it).
                Kept as the public attribute ``square_pad``: test-time augmentation
                raises it for a copy larger than the square (the ViT resizes its
                position tables to any grid).
        """
        super().__init__()
        if not isinstance(net, Backbone):
            raise TypeError(f"net must be a detectron2 Backbone, got {type(net).__name__}")
        self.scale_factors = scale_factors
        input_shape = net.output_shape()[in_feature]
        strides = [int(input_shape.stride / scale) for scale in scale_factors]
        stages = [int(math.log2(stride)) for stride in strides]
        if any(2**stage != stride for stage, stride in zip(stages, strides)) or stages != list(
            range(stages[0], stages[0] + len(stages))
        ):
            raise ValueError(f"pyramid strides {strides} must be consecutive powers of 2")

        use_bias = norm == ""
        self.stages = []
        for stage, scale in zip(stages, scale_factors):
            layers, dim = _scale_layers(scale, input_shape.channels, norm)
            layers += [
                Conv2d(dim, out_channels, kernel_size=1, bias=use_bias, norm=get_norm(norm, out_channels)),
                Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=use_bias,
                       norm=get_norm(norm, out_channels)),
            ]
            level = nn.Sequential(*layers)
            self.add_module(f"simfp_{stage}", level)
            self.stages.append(level)

        pyramid_names = [f"p{stage}" for stage in stages]
        if top_block is not None and top_block.in_feature not in pyramid_names + list(net.output_shape()):
            raise ValueError(
                f"top_block reads {top_block.in_feature!r}, which is neither a pyramid level "
                f"{pyramid_names} nor an output of the backbone {list(net.output_shape())}"
            )
        self.net = net
        self.in_feature = in_feature
        self.top_block = top_block
        self._out_feature_strides = {f"p{stage}": 2**stage for stage in stages}
        if top_block is not None:
            for stage in range(stages[-1] + 1, stages[-1] + 1 + top_block.num_levels):
                self._out_feature_strides[f"p{stage}"] = 2**stage
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {name: out_channels for name in self._out_features}
        self._size_divisibility = strides[-1]
        self.square_pad = square_pad

    @property
    def size_divisibility(self):
        return self._size_divisibility

    @property
    def padding_constraints(self):
        return {"size_divisibility": self._size_divisibility, "square_size": self.square_pad}

    def forward(self, x):
        """
        Args:
            x (Tensor): (N, C, H, W), H and W multiples of ``size_divisibility``.

        Returns:
            dict[str, Tensor]: "p<stage>" -> (N, out_channels, H / 2**stage, W / 2**stage),
            finest first.
        """
        bottom_up = self.net(x)
        features = bottom_up[self.in_feature]
        results = [stage(features) for stage in self.stages]
        if self.top_block is not None:
            top_in = bottom_up.get(self.top_block.in_feature)
            if top_in is None:
                top_in = results[self._out_features.index(self.top_block.in_feature)]
            results.extend(self.top_block(top_in))
        return dict(zip(self._out_features, results))
