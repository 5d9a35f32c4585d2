"""ConvNeXt checkpoints to detector keys (``backbone.bottom_up.*``).

Formats ConvNeXt declares (registered at the bottom of this file):

- ``official_convnext``: facebookresearch/ConvNeXt releases (``convnext_*_{1k,22k}_224.pth``);
- ``timm_convnext``: timm's ConvNeXt classifiers;
- ``spark`` (declared in :mod:`d2backbones.checkpoint.shared_formats`): SparK pretraining
  with :class:`~.sparse.SparseConvNeXt`, whose encoder holds our names.
"""
from ..checkpoint import CLASSIFIER, add_prefix, drop_keys, register_converter, register_family, register_format, rename_keys
from ..checkpoint.shared_formats import SPARK_FORMAT, spark_encoder_keys
from ..modeling.hierarchical import BACKBONE_PREFIX

__all__ = [
    "convert_official_convnext_checkpoint",
    "convert_spark_convnext_checkpoint",
    "convert_timm_convnext_checkpoint",
    "is_official_convnext_checkpoint",
    "is_timm_convnext_checkpoint",
]

# Classification heads and the final (pre-head) norm have no counterpart in a detector.
_CLASSIFIER_KEYS = (r"^head\.", r"^norm\.", r"^norm_pre\.")



def is_timm_convnext_checkpoint(state_dict):
    """timm's ConvNeXt keys: ``stem.0.*``, ``stages.{i}.blocks.{j}.conv_dw.*``."""
    return "stem.0.weight" in state_dict and any(
        key.startswith("stages.") and ".blocks." in key and ".conv_dw." in key for key in state_dict
    )


def convert_timm_convnext_checkpoint(state_dict, model=None):
    """timm ConvNeXt state dict -> detector keys (``backbone.bottom_up.*``).

    Our backbone holds timm's modules, so only the classifier is dropped. ``model``
    is not needed and accepted for the common converter signature.
    """
    kept, _ = drop_keys(state_dict, _CLASSIFIER_KEYS, source="timm ConvNeXt")
    return add_prefix(kept, BACKBONE_PREFIX)


def is_official_convnext_checkpoint(state_dict):
    """Official ConvNeXt release (``convnext_*_{1k,22k}_224.pth`` after unwrapping ``model``)."""
    return "downsample_layers.0.0.weight" in state_dict and any(key.startswith("stages.") for key in state_dict)


_OFFICIAL_TO_TIMM = (
    (r"^downsample_layers\.0\.", "stem."),
    (r"^downsample_layers\.(\d+)\.", r"stages.\1.downsample."),
    (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"\.dwconv\.", ".conv_dw."),
    (r"\.pwconv1\.", ".mlp.fc1."),
    (r"\.pwconv2\.", ".mlp.fc2."),
)


def convert_official_convnext_checkpoint(state_dict, model=None):
    """Official ConvNeXt state dict (``downsample_layers.*``, ``stages.{i}.{j}.*``, ``norm.*``,
    ``head.*``) -> detector keys. ``model`` is accepted for the common signature."""
    kept, _ = drop_keys(state_dict, _CLASSIFIER_KEYS, source="official ConvNeXt")
    return add_prefix(rename_keys(kept, _OFFICIAL_TO_TIMM), BACKBONE_PREFIX)


def convert_spark_convnext_checkpoint(state_dict, model=None):
    """SparK pretraining state dict -> detector keys: the encoder's ``sparse_encoder.*``
    (our names already) under ``backbone.bottom_up.``; the decoder, densify layers and
    mask tokens are pretraining-only. ``model`` is accepted for the common signature."""
    return add_prefix(spark_encoder_keys(state_dict), BACKBONE_PREFIX)


register_family("convnext", ("d2backbones.convnext",))
register_format("official_convnext", "official ConvNeXt (facebookresearch/ConvNeXt)",
                detect=is_official_convnext_checkpoint, priority=CLASSIFIER)
register_format("timm_convnext", "timm ConvNeXt", detect=is_timm_convnext_checkpoint, priority=CLASSIFIER)
register_converter("official_convnext", "convnext", convert_official_convnext_checkpoint)
register_converter("timm_convnext", "convnext", convert_timm_convnext_checkpoint)
register_converter(SPARK_FORMAT, "convnext", convert_spark_convnext_checkpoint)
