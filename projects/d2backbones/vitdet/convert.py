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
MAE decoder) is skipped and logged. A ViT that stores its ``pos_embed`` without a
cls slot (``pretrain_use_cls_token=False``, e.g. the demos trained from scratch)
gets the checkpoint's with the slot dropped (or added, the other way round); the
grid is resized in the forward pass, as for any stored grid.
"""
import logging
import math

import torch

from ..checkpoint import CLASSIFIER, DETECTOR, register_converter, register_family, register_format
from ..checkpoint.remap import add_prefix, drop_keys
from ..checkpoint.shared_formats import MAE_ENCODER_KEYS, mae_keys

__all__ = [
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_timm_vit_checkpoint",
    "convert_vitdet_zoo_checkpoint",
    "fit_cls_slot",
    "is_timm_vit_checkpoint",
    "is_vitdet_zoo_checkpoint",
    "vit_prefix",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "backbone.net."
# Encoder parts with no place in a detector, the MAE decoder, and the head of the
# mask-token methods (``decoder.*``, SimMIM's name; d2backbones.pretrain.mask_token).
UNUSED_ENCODER_KEYS = (r"^cls_token$", r"^norm\.", r"^fc_norm\.", r"^head\.", r"^mask_token$", r"^decoder_",
                       r"^decoder\.")


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


def _has_cls_slot(num_positions):
    """Whether a (1, N, C) position embedding is a square grid after a cls slot (N = 1 + S * S)."""
    grid = num_positions - 1
    return grid > 0 and math.isqrt(grid) ** 2 == grid


def fit_cls_slot(pos_embed, num_positions):
    """A stored (1, [1 +] S * S, C) ``pos_embed`` with the cls slot of a model that stores
    ``num_positions``: dropped, or added as zeros (MAE's fixed cls position). The grid is
    left as it is, so a grid of another size still fails the loader's shape check."""
    has_slot, wants_slot = _has_cls_slot(pos_embed.shape[1]), _has_cls_slot(num_positions)
    if has_slot and not wants_slot:
        return pos_embed[:, 1:]
    if wants_slot and not has_slot:
        return torch.cat([pos_embed.new_zeros(1, 1, pos_embed.shape[-1]), pos_embed], dim=1)
    return pos_embed


def _encoder_to_detector(state_dict, model, format_name):
    kept, skipped = drop_keys(state_dict, UNUSED_ENCODER_KEYS)
    if skipped:
        logger.info("%s checkpoint: skipped %d keys a detector does not use: %s", format_name, len(skipped),
                    ", ".join(sorted(skipped)[:8]) + (" ..." if len(skipped) > 8 else ""))
    converted = add_prefix(kept, vit_prefix(model))
    key = vit_prefix(model) + "pos_embed"
    target = model.state_dict().get(key) if model is not None else None
    if key in converted and target is not None:
        stored = converted[key]
        converted[key] = fit_cls_slot(stored, target.shape[1])
        if converted[key].shape != stored.shape:
            logger.info("%s checkpoint: pos_embed %s given the model's cls slot: %s", format_name,
                        tuple(stored.shape), tuple(converted[key].shape))
    return converted


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
