"""The yacs-config backbone builders (``MODEL.BACKBONE.NAME = "build_*_backbone"``) that
every hierarchical family shares: its config section, the named-size lookup, the
backbone read from that section, and the FPN on top. A family's ``build.py`` only
names its section, its sizes and its extra keys."""
from detectron2.config import CfgNode as CN
from detectron2.modeling import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

__all__ = ["add_hierarchical_config", "build_fpn_on", "build_hierarchical_backbone", "size_arguments"]


def add_hierarchical_config(cfg, section, *, size, drop_path_rate, **extra):
    """Add ``MODEL.<section>`` with ``SIZE``, ``DROP_PATH_RATE``, ``USE_ACT_CHECKPOINT``
    (False) and each ``extra`` keyword as an upper-case key (e.g. ``window_size=7``)."""
    node = CN()
    node.SIZE = size
    node.DROP_PATH_RATE = drop_path_rate
    node.USE_ACT_CHECKPOINT = False
    for key, value in extra.items():
        node[key.upper()] = value
    cfg.MODEL[section] = node


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


def build_hierarchical_backbone(backbone_class, sizes, cfg, input_shape, section, extra_arguments=()):
    """``backbone_class`` read from ``MODEL.<section>`` (see :func:`add_hierarchical_config`),
    with ``MODEL.BACKBONE.FREEZE_AT`` and ``MODEL.RESNETS.OUT_FEATURES`` read as for ResNet.

    Args:
        backbone_class (type): a :class:`~d2backbones.modeling.hierarchical.HierarchicalBackbone`.
        sizes (dict[str, dict]): size name -> constructor arguments.
        section (str): the config section, e.g. ``"SWIN"``.
        extra_arguments (tuple[str]): further constructor arguments, each read from the
            section's upper-case key of the same name (``window_size`` <- ``WINDOW_SIZE``).
    """
    node = cfg.MODEL[section]
    return backbone_class(
        **size_arguments(sizes, node.SIZE, f"MODEL.{section}.SIZE"),
        in_chans=input_shape.channels,
        drop_path_rate=node.DROP_PATH_RATE,
        out_features=tuple(cfg.MODEL.RESNETS.OUT_FEATURES),
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        use_act_checkpoint=node.USE_ACT_CHECKPOINT,
        **{argument: node[argument.upper()] for argument in extra_arguments},
    )
