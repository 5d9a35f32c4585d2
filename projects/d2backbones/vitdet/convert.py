"""Foreign checkpoints to ViTDet detector keys (``backbone.net.*``).

Formats ViTDet declares (registered at the bottom of this file):

- ``vitdet_zoo``: detectron2's ViTDet model-zoo ``.pkl``, already in detector keys.
- ``timm_vit``: a timm ViT classifier: the MAE encoder keys plus ``head.*``.

and its converters for the shared MAE formats (detected in
:mod:`d2backbones.checkpoint.shared_formats`):

- ``mae``: MAE encoder (``mae_pretrain_vit_*.pth``);
- ``mae_full``: MAE encoder + decoder (``*_full.pth``); ViTDet uses the encoder only.

ViTDet keeps the 224-px ``pos_embed`` (with its cls slot) and resizes it in the
forward pass, and starts its rel-pos tables at zero, so the encoder weights load
as they are; what a detector has no use for (cls token, final norm, classifier,
MAE decoder) is skipped and logged.
"""
import logging

from ..checkpoint import CLASSIFIER, DETECTOR, register_converter, register_family, register_format
from ..checkpoint.remap import add_prefix, drop_keys
from ..checkpoint.shared_formats import MAE_ENCODER_KEYS, mae_keys

__all__ = [
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_timm_vit_checkpoint",
    "convert_vitdet_zoo_checkpoint",
    "is_timm_vit_checkpoint",
    "is_vitdet_zoo_checkpoint",
    "vit_prefix",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "backbone.net."
# Encoder parts with no place in a detector, and the MAE decoder.
UNUSED_ENCODER_KEYS = (r"^cls_token$", r"^norm\.", r"^fc_norm\.", r"^head\.", r"^mask_token$", r"^decoder_")


def is_timm_vit_checkpoint(state_dict):
    """A timm / DeiT ViT classifier: encoder keys plus ``head.weight``."""
    return (all(key in state_dict for key in MAE_ENCODER_KEYS) and "head.weight" in state_dict
            and "decoder_embed.weight" not in state_dict)


def is_vitdet_zoo_checkpoint(state_dict):
    """A ViTDet detector (detectron2 model zoo or our training): ``backbone.net.*`` and a pyramid."""
    return "backbone.net.patch_embed.proj.weight" in state_dict and any(k.startswith("backbone.simfp_") for k in state_dict)


def vit_prefix(model):
    """State-dict prefix of the ViT inside ``model`` (``backbone.net.`` in ViTDet configs)."""
    if model is None:
        return DEFAULT_PREFIX
    for name, module in model.named_modules():
        if type(module).__name__ == "ViT" and hasattr(module, "patch_embed"):
            return f"{name}." if name else ""
    raise ValueError(f"{type(model).__name__} has no ViT module to load a ViT checkpoint into")


def _encoder_to_detector(state_dict, model, format_name):
    kept, skipped = drop_keys(state_dict, UNUSED_ENCODER_KEYS)
    if skipped:
        logger.info("%s checkpoint: skipped %d keys a detector does not use: %s", format_name, len(skipped),
                    ", ".join(sorted(skipped)[:8]) + (" ..." if len(skipped) > 8 else ""))
    return add_prefix(kept, vit_prefix(model))


def convert_mae_checkpoint(state_dict, model=None):
    """MAE encoder keys -> ``backbone.net.*`` (cls token and final norm skipped)."""
    return _encoder_to_detector(mae_keys(state_dict), model, "MAE")


def convert_mae_full_checkpoint(state_dict, model=None):
    """MAE encoder + decoder -> ``backbone.net.*`` (decoder and mask token skipped)."""
    return _encoder_to_detector(mae_keys(state_dict), model, "MAE (full)")


def convert_timm_vit_checkpoint(state_dict, model=None):
    """timm ViT classifier -> ``backbone.net.*`` (head, cls token, final norm skipped)."""
    return _encoder_to_detector(state_dict, model, "timm ViT")


def convert_vitdet_zoo_checkpoint(state_dict, model=None):
    """Already in detector keys; returned as is (a new dict)."""
    return dict(state_dict)


register_family("vitdet", ("d2backbones.vitdet", "detectron2.modeling.backbone.vit"))
register_format("vitdet_zoo", "ViTDet detector (detectron2 model-zoo .pkl or a training checkpoint)",
                detect=is_vitdet_zoo_checkpoint, priority=DETECTOR)
register_format("timm_vit", "timm ViT classifier", detect=is_timm_vit_checkpoint, priority=CLASSIFIER)
register_converter("vitdet_zoo", "vitdet", convert_vitdet_zoo_checkpoint)
register_converter("mae_full", "vitdet", convert_mae_full_checkpoint)
register_converter("mae", "vitdet", convert_mae_checkpoint)
register_converter("timm_vit", "vitdet", convert_timm_vit_checkpoint)
