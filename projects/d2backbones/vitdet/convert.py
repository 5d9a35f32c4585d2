"""Foreign checkpoints to ViTDet detector keys (``backbone.net.*``).

Formats (each an ``is_<format>_checkpoint`` / ``convert_<format>_checkpoint`` pair):

- ``mae``: MAE encoder (``mae_pretrain_vit_*.pth``): ``cls_token``, ``pos_embed``,
  ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``.
- ``mae_full``: MAE encoder + decoder (``*_full.pth``): adds ``mask_token`` and
  ``decoder_*``; ViTDet uses the encoder only.
- ``timm_vit``: a timm ViT classifier: the MAE encoder keys plus ``head.*``.
- ``vitdet_zoo``: detectron2's ViTDet model-zoo ``.pkl``, already in detector keys.

ViTDet keeps the 224-px ``pos_embed`` (with its cls slot) and resizes it in the
forward pass, and starts its rel-pos tables at zero, so the encoder weights load
as they are; what a detector has no use for (cls token, final norm, classifier,
MAE decoder) is skipped and logged.
"""
import logging

from ..checkpoint.remap import add_prefix, drop_keys

__all__ = [
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_timm_vit_checkpoint",
    "convert_vitdet_zoo_checkpoint",
    "is_mae_checkpoint",
    "is_mae_full_checkpoint",
    "is_timm_vit_checkpoint",
    "is_vitdet_zoo_checkpoint",
    "vit_prefix",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "backbone.net."
# Encoder parts with no place in a detector, and the MAE decoder.
UNUSED_ENCODER_KEYS = (r"^cls_token$", r"^norm\.", r"^fc_norm\.", r"^head\.", r"^mask_token$", r"^decoder_")


def _has_vit_encoder(state_dict):
    return "patch_embed.proj.weight" in state_dict and "blocks.0.attn.qkv.weight" in state_dict


def is_mae_checkpoint(state_dict):
    """MAE encoder only: ViT keys without a decoder or a classifier."""
    return _has_vit_encoder(state_dict) and not any(k.startswith(("decoder_", "head.")) for k in state_dict)


def is_mae_full_checkpoint(state_dict):
    """MAE encoder and decoder (``mae_pretrain_vit_*_full.pth``)."""
    return _has_vit_encoder(state_dict) and any(k.startswith("decoder_blocks.") for k in state_dict)


def is_timm_vit_checkpoint(state_dict):
    """A timm / DeiT ViT classifier: encoder keys plus ``head.weight``."""
    return _has_vit_encoder(state_dict) and "head.weight" in state_dict and "decoder_embed.weight" not in state_dict


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
    return _encoder_to_detector(state_dict, model, "MAE")


def convert_mae_full_checkpoint(state_dict, model=None):
    """MAE encoder + decoder -> ``backbone.net.*`` (decoder and mask token skipped)."""
    return _encoder_to_detector(state_dict, model, "MAE (full)")


def convert_timm_vit_checkpoint(state_dict, model=None):
    """timm ViT classifier -> ``backbone.net.*`` (head, cls token, final norm skipped)."""
    return _encoder_to_detector(state_dict, model, "timm ViT")


def convert_vitdet_zoo_checkpoint(state_dict, model=None):
    """Already in detector keys; returned as is (a new dict)."""
    return dict(state_dict)
