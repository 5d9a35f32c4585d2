"""yacs-config entry points: ``MODEL.BACKBONE.NAME = "build_convnext_backbone"`` or
``"build_convnext_fpn_backbone"``, sized by ``MODEL.CONVNEXT.SIZE``.

LazyConfig users instantiate :class:`ConvNeXt` directly (see ``configs/ConvNeXt``).
"""
from detectron2.modeling import BACKBONE_REGISTRY

from ..modeling.yacs_builders import add_hierarchical_config, build_fpn_on, build_hierarchical_backbone
from .convnext import CONVNEXT_SIZES, ConvNeXt

__all__ = ["add_convnext_config", "build_convnext_backbone", "build_convnext_fpn_backbone"]


def add_convnext_config(cfg):
    """Add ``MODEL.CONVNEXT`` (ConvNeXt-T, drop path 0.4, as the official Mask R-CNN) to a yacs config."""
    add_hierarchical_config(cfg, "CONVNEXT", size="tiny", drop_path_rate=0.4)


@BACKBONE_REGISTRY.register()
def build_convnext_backbone(cfg, input_shape):
    """ConvNeXt from ``MODEL.CONVNEXT`` (SIZE one of tiny/small/base/large), with
    ``MODEL.BACKBONE.FREEZE_AT`` and ``MODEL.RESNETS.OUT_FEATURES`` read as for ResNet."""
    return build_hierarchical_backbone(ConvNeXt, CONVNEXT_SIZES, cfg, input_shape, "CONVNEXT")


@BACKBONE_REGISTRY.register()
def build_convnext_fpn_backbone(cfg, input_shape):
    """ConvNeXt + detectron2's FPN (``MODEL.FPN.*``, P2-P6), as ``build_resnet_fpn_backbone``."""
    return build_fpn_on(build_convnext_backbone(cfg, input_shape), cfg)
