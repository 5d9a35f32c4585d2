"""Checkpoints for MIMDet detectors.

Formats MIMDet declares (registered at the bottom of this file):

- ``mimdet``: a detector of the reference code or ours; keys as they are.

and its converters for the shared MAE formats (detected in
:mod:`d2backbones.checkpoint.shared_formats`):

- ``mae_full``: MAE encoder + decoder; initialises the encoder and the decoder.
- ``mae``: MAE encoder only; refused (the decoder would stay random, which the
  reference trains to NaN) unless ``allow_random_decoder`` opts in.
"""
import logging
import math

import torch

from ..checkpoint import DETECTOR, register_converter, register_family, register_format
from ..checkpoint.remap import drop_keys, rename_keys
from ..checkpoint.shared_formats import mae_keys
from ..layers import resize_abs_pos_embed
from .backbone import MIMDetBackbone
from .conv_stem import TOKEN_STRIDE

__all__ = [
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_mimdet_checkpoint",
    "is_mimdet_checkpoint",
]

logger = logging.getLogger(__name__)

# The reference config (800 px grid, 4 decoder blocks, conv-feature fill), assumed
# when convert_mae_checkpoint gets no model to read the sizes from.
REFERENCE_GRID = 800 // TOKEN_STRIDE
REFERENCE_DECODER_DEPTH = 4
MAE_ENCODER_KEY = "blocks.0.attn.qkv.weight"
MAE_DECODER_KEYS = ("decoder_embed.weight", "decoder_pos_embed", "decoder_blocks.0.attn.qkv.weight")
ENCODER_PREFIX = "backbone.bottom_up.encoder."
DECODER_PREFIX = "backbone.bottom_up.decoder."
MAE_RULES = [
    (r"^(decoder_|mask_token$)", DECODER_PREFIX + r"\1"),
    (r"^(blocks\.|norm\.|pos_embed$)", ENCODER_PREFIX + r"\1"),
]
ENCODER_ONLY_MESSAGE = (
    "this MAE checkpoint holds only the encoder: it has no {missing}. MIMDet initialises "
    "its decoder from the MAE decoder, and with a random decoder the reference trains "
    "to NaN (hustvl/MIMDet issues #7 and #26). Use the full MAE checkpoint "
    "(mae_pretrain_vit_base_full.pth / mae_pretrain_vit_large_full.pth from "
    "facebookresearch/mae), or opt in to a random decoder with "
    "model.backbone.bottom_up.allow_random_decoder=True"
)


def is_mimdet_checkpoint(state_dict):
    """A detector of the reference code (its releases) or ours: ConvStem and decoder keys."""
    return (ENCODER_PREFIX + "patch_embed.proj.0.0.weight" in state_dict
            and DECODER_PREFIX + "decoder_embed.weight" in state_dict)


def convert_mimdet_checkpoint(state_dict, model=None):
    """Already in our keys (we use the reference's names); returned as is (a new dict)."""
    return dict(state_dict)


def _find_backbone(model):
    if model is None:
        return None
    found = [m for m in model.modules() if isinstance(m, MIMDetBackbone)]
    if len(found) != 1:
        raise ValueError(f"expected one MIMDetBackbone in the model to convert an MAE checkpoint for, found {len(found)}")
    return found[0]


def _resize_pos_embed_with_cls(pos_embed, grid):
    """(1, 1 + S*S, C) -> (1, 1 + grid*grid, C), bicubic, cls slot kept."""
    resized = resize_abs_pos_embed(pos_embed, True, (grid, grid)).flatten(1, 2)
    return torch.cat([pos_embed[:, :1], resized], dim=1)


def convert_mae_checkpoint(state_dict, model=None, allow_random_decoder=None):
    """MAE ViT checkpoint, full or encoder-only -> MIMDet detector keys (``backbone.bottom_up.{encoder,decoder}.*``).

    A full MAE checkpoint (``mae_pretrain_vit_{base,large}_full.pth``) initialises the
    encoder blocks and norm and the first decoder blocks, ``decoder_embed`` and
    ``decoder_norm``; both position embeddings are resized from the 14 x 14 grid to the
    model's. Skipped, and logged: ``cls_token`` and ``patch_embed`` (the ConvStem
    replaces the patchify stem), ``decoder_pred``, decoder blocks beyond the model's
    depth, and ``mask_token`` unless the decoder fills with one.

    An encoder-only checkpoint raises ``ValueError`` unless ``allow_random_decoder``
    (default: the model backbone's ``allow_random_decoder`` setting) is True; then
    the decoder stays at random init, which is logged as a warning.

    Args:
        state_dict (dict[str, Tensor]): the unwrapped MAE tensors.
        model (nn.Module or None): the detector, to read the grid and decoder depth
            from; None assumes the reference config (50 x 50 grid, 4 decoder blocks,
            conv-feature fill).
    """
    state_dict = mae_keys(state_dict)
    backbone = _find_backbone(model)
    if allow_random_decoder is None:
        allow_random_decoder = bool(backbone is not None and backbone.allow_random_decoder)

    missing_decoder = [k for k in MAE_DECODER_KEYS if k not in state_dict]
    if missing_decoder:
        if not allow_random_decoder:
            raise ValueError(ENCODER_ONLY_MESSAGE.format(missing=", ".join(missing_decoder)))
        logger.warning(
            "MAE checkpoint has no decoder (%s); the MIMDet decoder stays at random init "
            "(allow_random_decoder=True)", ", ".join(missing_decoder)
        )

    if backbone is not None:
        decoder = backbone.decoder
        grids = {key: math.isqrt(param.shape[1] - 1) for key, param in
                 (("pos_embed", backbone.encoder.pos_embed), ("decoder_pos_embed", decoder.decoder_pos_embed))}
        decoder_depth = len(decoder.decoder_blocks)
        keeps_mask_token = decoder.unkept_token_fill == "mask_token"
        model_width = backbone.encoder.pos_embed.shape[-1]
        checkpoint_width = state_dict[MAE_ENCODER_KEY].shape[1]
        if checkpoint_width != model_width:
            raise ValueError(
                f"MAE checkpoint is {checkpoint_width} wide but the MIMDet encoder is {model_width} "
                "wide: pick the MAE file of the same ViT size (base 768, large 1024)"
            )
    else:
        decoder_depth, keeps_mask_token = REFERENCE_DECODER_DEPTH, False
        grids = {"pos_embed": REFERENCE_GRID, "decoder_pos_embed": REFERENCE_GRID}
        logger.info("No model given: converting the MAE checkpoint for the reference MIMDet (800 px grid, 4 decoder blocks)")

    used_blocks = "|".join(str(i) for i in range(decoder_depth))
    # decoder.*: the head of a mask-token method (MaskFeat, SimMIM), encoder-only to MIMDet.
    skipped = [r"^cls_token$", r"^patch_embed\.", r"^decoder_pred\.", rf"^decoder_blocks\.(?!({used_blocks})\.)",
               r"^decoder\."]
    # Without an MAE decoder a mask token is the encoder's (MaskFeat, SimMIM), not the decoder's.
    if not keeps_mask_token or missing_decoder:
        skipped.append(r"^mask_token$")
    kept, dropped = drop_keys(state_dict, skipped)
    for key, grid in grids.items():
        if key in kept:
            kept[key] = _resize_pos_embed_with_cls(kept[key], grid)

    converted = rename_keys(kept, MAE_RULES)
    unknown = sorted(k for k in converted if not k.startswith("backbone.bottom_up."))
    if unknown:
        raise ValueError(f"MAE checkpoint has keys MIMDet does not know: {unknown[:10]}")
    if dropped:
        logger.info("MAE -> MIMDet: skipped %d keys: %s", len(dropped), ", ".join(sorted(dropped)))
    return converted


def convert_mae_full_checkpoint(state_dict, model=None):
    """Full MAE checkpoint -> MIMDet detector keys; see :func:`convert_mae_checkpoint`."""
    return convert_mae_checkpoint(state_dict, model)


register_family("mimdet", ("d2backbones.mimdet",))
register_format("mimdet", "MIMDet detector (reference release or a training checkpoint)",
                detect=is_mimdet_checkpoint, priority=DETECTOR)
register_converter("mimdet", "mimdet", convert_mimdet_checkpoint)
register_converter("mae_full", "mimdet", convert_mae_full_checkpoint)
register_converter("mae", "mimdet", convert_mae_checkpoint)
