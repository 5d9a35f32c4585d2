"""Checkpoints of :class:`~.mask_token.MaskTokenPretrainer`: how the loaders read them.

The model's state dict is SimMIM's layout: ``encoder.*`` (with ``encoder.mask_token``)
and ``decoder.*`` (the head).

- With a ViT encoder (:class:`~.masked_vit.MaskTokenViT`) it is an MAE encoder
  checkpoint: MAE's reader strips ``encoder.`` as a release wrapper, so the ``mae``
  format detects it and the ViTDet and MIMDet converters take the encoder (skipping
  ``mask_token`` and ``decoder.*``). Read back into this model, the ``encoder.``
  prefix is put back (so an MAE release also starts a MaskFeat or SimMIM run).
- With any other encoder (Swin's) it is the ``mask_token_mim`` format declared here;
  the family of that encoder registers its converter, taking
  :func:`mask_token_encoder_keys` into its detectors (Swin's is in
  ``d2backbones/swin/convert.py``).
"""
from ..checkpoint import PRETRAINING, register_converter, register_family, register_format
from ..checkpoint.shared_formats import is_mae_checkpoint, mae_keys

__all__ = [
    "MASK_TOKEN_FORMAT",
    "convert_mae_for_mask_token_pretraining",
    "is_mask_token_checkpoint",
    "mask_token_encoder_keys",
]

MASK_TOKEN_FORMAT = "mask_token_mim"
ENCODER_PREFIX = "encoder."
DECODER_PREFIX = "decoder."
MASK_TOKEN_KEY = ENCODER_PREFIX + "mask_token"


def is_mask_token_checkpoint(state_dict):
    """``encoder.*`` with a mask token and not a ViT: a ViT's is read as MAE's encoder."""
    return MASK_TOKEN_KEY in state_dict and not is_mae_checkpoint(state_dict)


def mask_token_encoder_keys(state_dict):
    """The encoder's weights in its own names: ``encoder.`` removed; the mask token and
    the head (``decoder.*``), which no detector has, left out."""
    return {key[len(ENCODER_PREFIX):]: value for key, value in state_dict.items()
            if key.startswith(ENCODER_PREFIX) and key != MASK_TOKEN_KEY}


def convert_mae_for_mask_token_pretraining(state_dict, model=None):
    """MAE-format keys -> this model's: ``decoder.*`` kept, the rest under ``encoder.``."""
    return {key if key.startswith(DECODER_PREFIX) else ENCODER_PREFIX + key: value
            for key, value in mae_keys(state_dict).items()}


def convert_mask_token_for_pretraining(state_dict, model=None):
    """Already this model's names: returned as they are (a new dict)."""
    return dict(state_dict)


register_family("mask_token_pretraining", ("d2backbones.pretrain.mask_token",))
register_format(MASK_TOKEN_FORMAT, "mask-token MIM pretraining, SimMIM layout (encoder.* with mask_token, decoder.*)",
                detect=is_mask_token_checkpoint, priority=PRETRAINING)
register_converter(MASK_TOKEN_FORMAT, "mask_token_pretraining", convert_mask_token_for_pretraining)
register_converter("mae", "mask_token_pretraining", convert_mae_for_mask_token_pretraining)
