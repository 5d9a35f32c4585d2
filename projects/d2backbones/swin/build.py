"""yacs-config entry points: ``MODEL.BACKBONE.NAME = "build_swin_backbone"`` or
``"build_swin_fpn_backbone"``, sized by ``MODEL.SWIN.SIZE``.

LazyConfig users instantiate :class:`SwinTransformer` directly (see ``configs/Swin``).
"""
from detectron2.modeling import BACKBONE_REGISTRY

from ..modeling.yacs_builders import add_hierarchical_config, build_fpn_on, build_hierarchical_backbone
from .swin import SWIN_SIZES, SwinTransformer

__all__ = ["add_swin_config", "build_swin_backbone", "build_swin_fpn_backbone"]


def add_swin_config(cfg):
    """Add ``MODEL.SWIN`` (Swin-T, window 7, drop path 0.2, as the official Mask R-CNN) to a yacs config."""
    add_hierarchical_config(cfg, "SWIN", size="tiny", drop_path_rate=0.2, window_size=7)


@BACKBONE_REGISTRY.register()
def build_swin_backbone(cfg, input_shape):
    """Swin from ``MODEL.SWIN`` (SIZE one of tiny/small/base/large), with
    ``MODEL.BACKBONE.FREEZE_AT`` and ``MODEL.RESNETS.OUT_FEATURES`` read as for ResNet."""
    return build_hierarchical_backbone(SwinTransformer, SWIN_SIZES, cfg, input_shape, "SWIN", ("window_size",))


@BACKBONE_REGISTRY.register()
def build_swin_fpn_backbone(cfg, input_shape):
    """Swin + detectron2's FPN (``MODEL.FPN.*``, P2-P6), as ``build_resnet_fpn_backbone``."""
    return build_fpn_on(build_swin_backbone(cfg, input_shape), cfg)
