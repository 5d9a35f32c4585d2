"""Checkpoint formats that no single family owns: MAE (read by every plain-ViT family),
SparK (read by the CNN families that can be its encoder) and detectron2's own
training checkpoint (read by all).

Each has one detect function here. A family that reads MAE registers its own
converter in its ``convert.py``; the ``d2`` format is converted the same way for all.

MAE (facebookresearch/mae ``models_mae.py``) keys: ``cls_token``, ``pos_embed``
(1, 1 + S*S, C), ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``; the full
checkpoint (``mae_pretrain_vit_*_full.pth``) adds ``mask_token``,
``decoder_embed.*``, ``decoder_pos_embed``, ``decoder_blocks.N.*``,
``decoder_norm.*`` and ``decoder_pred.*``. Some releases wrap the keys in
``module.`` or ``encoder.``; :func:`mae_keys` removes that.

SparK (``d2backbones.pretrain.SparK``) keys: ``sparse_encoder.*`` (the encoder, in its
family's detection-backbone names), ``dense_decoder.*``, ``densify_norms.*``,
``densify_projs.*`` and ``mask_tokens.*``. A family reads the encoder with
:func:`spark_encoder_keys`; the rest is pretraining-only. (SparK's own releases name
the encoder ``sparse_encoder.sp_cnn.*``: not this format.)
"""
from .formats import ANY_FAMILY, ENCODER, GENERIC, PRETRAINING, register_converter, register_format
from .remap import strip_prefixes

__all__ = [
    "D2_FORMAT",
    "DETECTOR_PREFIXES",
    "SPARK_FORMAT",
    "is_d2_checkpoint",
    "is_mae_checkpoint",
    "is_mae_full_checkpoint",
    "is_spark_checkpoint",
    "mae_keys",
    "spark_encoder_keys",
]

D2_FORMAT = "d2"
DETECTOR_PREFIXES = ("backbone.", "proposal_generator.", "roi_heads.")
MAE_WRAPPER_PREFIXES = ("module.", "encoder.")
MAE_ENCODER_KEYS = ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight")
SPARK_FORMAT = "spark"
SPARK_ENCODER_PREFIX = "sparse_encoder."


def mae_keys(state_dict):
    """``state_dict`` without the ``module.`` / ``encoder.`` wrappers some MAE releases add."""
    return strip_prefixes(state_dict, MAE_WRAPPER_PREFIXES)


def _has_vit_encoder(state_dict):
    return all(key in state_dict for key in MAE_ENCODER_KEYS)


def is_mae_checkpoint(state_dict):
    """MAE encoder only (``mae_pretrain_vit_*.pth``): ViT keys, no decoder, no classifier."""
    state_dict = mae_keys(state_dict)
    return _has_vit_encoder(state_dict) and not any(k.startswith(("decoder_", "head.")) for k in state_dict)


def is_mae_full_checkpoint(state_dict):
    """MAE encoder and decoder (``mae_pretrain_vit_*_full.pth``)."""
    state_dict = mae_keys(state_dict)
    return _has_vit_encoder(state_dict) and any(k.startswith("decoder_blocks.") for k in state_dict)


def is_spark_checkpoint(state_dict):
    """SparK pretraining: an encoder with a stem under ``sparse_encoder.``, and mask tokens."""
    return "mask_tokens.0" in state_dict and any(key.startswith(SPARK_ENCODER_PREFIX + "stem.") for key in state_dict)


def spark_encoder_keys(state_dict):
    """A SparK checkpoint's encoder weights, without the ``sparse_encoder.`` prefix: the family's names."""
    start = len(SPARK_ENCODER_PREFIX)
    return {key[start:]: value for key, value in state_dict.items() if key.startswith(SPARK_ENCODER_PREFIX)}


def is_d2_checkpoint(state_dict):
    """Keys of a detectron2 detector (``backbone.*``, ``roi_heads.*`` ...)."""
    return any(key.startswith(DETECTOR_PREFIXES) for key in state_dict)


def convert_d2_checkpoint(state_dict, model=None):
    """Already detector keys; returned as they are (a new dict)."""
    return dict(state_dict)


register_format("mae_full", "MAE encoder + decoder", detect=is_mae_full_checkpoint, priority=PRETRAINING)
register_format(SPARK_FORMAT, "SparK pretraining (sparse encoder + light decoder)", detect=is_spark_checkpoint,
                priority=PRETRAINING)
register_format("mae", "MAE encoder only", detect=is_mae_checkpoint, priority=ENCODER)
register_format(D2_FORMAT, "detectron2 training checkpoint (detector keys)", detect=is_d2_checkpoint, priority=GENERIC)
register_converter(D2_FORMAT, ANY_FAMILY, convert_d2_checkpoint)
