"""Pieces of the yacs-config backbone builders (``MODEL.BACKBONE.NAME = "build_*_backbone"``)
that every hierarchical family shares: the named-size lookup and the FPN on top."""
from detectron2.modeling import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

__all__ = ["build_fpn_on", "size_arguments"]


def size_arguments(sizes, size, config_key):
    """The constructor arguments of a named model size.

    Args:
        sizes (dict[str, dict]): size name -> keyword arguments of the backbone.
        size (str): the name the config asks for.
        config_key (str): the config key ``size`` was read from, named in the error.

    Returns:
        dict: ``sizes[size]``.
    """
    if size not in sizes:
        raise ValueError(f"{config_key} must be one of {sorted(sizes)}; got {size!r}")
    return sizes[size]


def build_fpn_on(bottom_up, cfg, in_features=None):
    """detectron2's FPN over ``bottom_up``, read from ``MODEL.FPN.*`` with a max-pooled
    P6, as ``build_resnet_fpn_backbone`` builds it over a ResNet.

    Args:
        bottom_up (Backbone): gives the features named in ``in_features``.
        cfg (CfgNode): the yacs config.
        in_features (list[str] | None): the pyramid's inputs, finest first;
            ``MODEL.FPN.IN_FEATURES`` when None.

    Returns:
        FPN: ``p2``..``p6`` (for inputs at strides 4..32) of ``MODEL.FPN.OUT_CHANNELS``.
    """
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES if in_features is None else in_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
