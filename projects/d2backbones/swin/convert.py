"""Swin checkpoints to detector keys (``backbone.bottom_up.*``).

Formats Swin declares (registered at the bottom of this file):

- ``detectron2_swin``: a detector of detectron2's ViTDet project with its ``SwinTransformer``;
- ``official_swin``: microsoft/Swin-Transformer releases (``swin_*_patch4_window*.pth``);
- ``timm_swin``: timm's Swin classifiers.

and its converter for ``mask_token_mim`` (declared in
:mod:`d2backbones.pretrain.mask_token_checkpoint`): Swin pretrained with a mask token
(SimMIM or MaskFeat, by :class:`~.masked.MaskedSwinTransformer` or SimMIM's release).
"""
import logging

from ..checkpoint import (
    CLASSIFIER,
    DETECTOR,
    add_prefix,
    drop_keys,
    register_converter,
    register_family,
    register_format,
    rename_keys,
    strip_prefixes,
)
from ..layers import resize_rel_pos_bias_table
from ..modeling.hierarchical import BACKBONE_PREFIX
from ..pretrain.mask_token_checkpoint import MASK_TOKEN_FORMAT, mask_token_encoder_keys
from .swin import SwinTransformer

__all__ = [
    "convert_detectron2_swin_checkpoint",
    "convert_mask_token_swin_checkpoint",
    "convert_official_swin_checkpoint",
    "convert_timm_swin_checkpoint",
    "is_detectron2_swin_checkpoint",
    "is_official_swin_checkpoint",
    "is_timm_swin_checkpoint",
]

logger = logging.getLogger(__name__)

# Buffers every implementation recomputes, and the classifier of the ImageNet releases.
_BUFFER_KEYS = (r"relative_position_index$", r"attn_mask$")
_CLASSIFIER_KEYS = (r"^head\.", r"^norm\.")
# Official and detectron2 Swin merge patches at the end of stage i; timm (and we) at the
# start of stage i + 1.
_DOWNSAMPLE_AT_STAGE_END = "layers.0.downsample.reduction.weight"
# ``re.sub`` takes a function as the replacement, so the stage index can be incremented.
_DOWNSAMPLE_TO_NEXT_STAGE = (
    (r"^layers\.(\d+)\.downsample\.", lambda match: f"layers.{int(match.group(1)) + 1}.downsample."),
)


def _find_swin(model):
    if model is None:
        return None
    return next((m for m in model.modules() if isinstance(m, SwinTransformer)), None)


def _resize_bias_tables(state_dict, model):
    """Resize every relative-position bias table to the model's window (pretraining at
    384 px used window 12; detection uses 7). Without a model the tables are kept."""
    swin = _find_swin(model)
    if swin is None:
        return state_dict
    window = (swin.window_size, swin.window_size)
    resized = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_bias_table"):
            new_value = resize_rel_pos_bias_table(value, window)
            if new_value.shape != value.shape:
                logger.info("resized %s from %s to %s for window %d", key, tuple(value.shape), tuple(new_value.shape), swin.window_size)
            value = new_value
        resized[key] = value
    return resized



def is_timm_swin_checkpoint(state_dict):
    """timm's Swin keys: ``layers.{i}.blocks.*`` with patch merging opening stages 1-3."""
    return (
        "patch_embed.proj.weight" in state_dict
        and "layers.1.downsample.reduction.weight" in state_dict
        and _DOWNSAMPLE_AT_STAGE_END not in state_dict
    )


def convert_timm_swin_checkpoint(state_dict, model=None):
    """timm Swin state dict -> detector keys (``backbone.bottom_up.*``). Our backbone
    holds timm's modules, so only the classifier is dropped; bias tables are resized
    to ``model``'s window when given."""
    kept, _ = drop_keys(state_dict, _BUFFER_KEYS + _CLASSIFIER_KEYS, source="timm Swin")
    return add_prefix(_resize_bias_tables(kept, model), BACKBONE_PREFIX)


def is_official_swin_checkpoint(state_dict):
    """Official Swin release (``swin_*_patch4_window*.pth`` after unwrapping ``model``)."""
    return "patch_embed.proj.weight" in state_dict and _DOWNSAMPLE_AT_STAGE_END in state_dict


def convert_official_swin_checkpoint(state_dict, model=None):
    """Official Swin state dict -> detector keys: patch merging moves to the next stage,
    ``relative_position_index`` / ``attn_mask`` buffers and the classifier are dropped,
    and bias tables are resized to ``model``'s window when given."""
    kept, _ = drop_keys(state_dict, _BUFFER_KEYS + _CLASSIFIER_KEYS, source="official Swin")
    return add_prefix(_resize_bias_tables(rename_keys(kept, _DOWNSAMPLE_TO_NEXT_STAGE), model), BACKBONE_PREFIX)


def is_detectron2_swin_checkpoint(state_dict):
    """A detector with ``detectron2.modeling.SwinTransformer`` under ``backbone.bottom_up``
    (detectron2's ViTDet project)."""
    return BACKBONE_PREFIX + _DOWNSAMPLE_AT_STAGE_END in state_dict


def convert_detectron2_swin_checkpoint(state_dict, model=None):
    """detectron2 ViTDet-project Swin detector -> our detector keys. The backbone's patch
    merging moves to the next stage and its buffers are dropped; the pyramid and heads
    (same detectron2 modules) keep their names."""
    backbone = {k: v for k, v in state_dict.items() if k.startswith(BACKBONE_PREFIX)}
    rest = {k: v for k, v in state_dict.items() if not k.startswith(BACKBONE_PREFIX)}
    backbone, _ = drop_keys(strip_prefixes(backbone, [BACKBONE_PREFIX]), _BUFFER_KEYS, source="detectron2 Swin")
    converted = add_prefix(_resize_bias_tables(rename_keys(backbone, _DOWNSAMPLE_TO_NEXT_STAGE), model), BACKBONE_PREFIX)
    return {**rest, **converted}


def convert_mask_token_swin_checkpoint(state_dict, model=None):
    """Mask-token pretraining of a Swin -> detector keys (``backbone.bottom_up.*``).

    The encoder's weights only: its mask token and the prediction head have no place
    in a detector, and its one output norm fills the detector's norm of that stage.
    SimMIM's releases hold the official Swin layout (patch merging at stage ends, a
    final ``norm``), moved as for ``official_swin``. Bias tables are resized to
    ``model``'s window when given (SimMIM pretrains Swin-B at window 6).
    """
    encoder, _ = drop_keys(mask_token_encoder_keys(state_dict), _BUFFER_KEYS, source="mask-token Swin")
    if _DOWNSAMPLE_AT_STAGE_END in encoder:
        encoder, _ = drop_keys(encoder, _CLASSIFIER_KEYS, source="SimMIM Swin")
        encoder = rename_keys(encoder, _DOWNSAMPLE_TO_NEXT_STAGE)
    return add_prefix(_resize_bias_tables(encoder, model), BACKBONE_PREFIX)


register_family("swin", ("d2backbones.swin", "detectron2.modeling.backbone.swin"))
register_format("detectron2_swin", "Swin detector of detectron2's ViTDet project",
                detect=is_detectron2_swin_checkpoint, priority=DETECTOR)
register_format("official_swin", "official Swin (microsoft/Swin-Transformer)",
                detect=is_official_swin_checkpoint, priority=CLASSIFIER)
register_format("timm_swin", "timm Swin", detect=is_timm_swin_checkpoint, priority=CLASSIFIER)
register_converter("detectron2_swin", "swin", convert_detectron2_swin_checkpoint)
register_converter("official_swin", "swin", convert_official_swin_checkpoint)
register_converter("timm_swin", "swin", convert_timm_swin_checkpoint)
register_converter(MASK_TOKEN_FORMAT, "swin", convert_mask_token_swin_checkpoint)
