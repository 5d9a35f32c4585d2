"""Which format a checkpoint is in, and which family function converts it.

Each family package exports pairs of functions

    is_<format>_checkpoint(state_dict) -> bool
    convert_<format>_checkpoint(state_dict, model=None) -> detector state dict

and this module collects them by name, so a family adds a format by exporting a
pair. Detection tries formats from the most specific to the most generic (a
detectron2 training checkpoint last). Conversion uses the converter of the
model's own family when several families read the same format (MAE is read by
ViTDet, which keeps the encoder, and by MIMDet, which keeps the decoder too).
"""
import importlib
import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .safe_load import CheckpointError

__all__ = ["CheckpointFormat", "FAMILIES", "convert_state_dict", "detect_format", "get_format", "model_family", "registered_formats"]

logger = logging.getLogger(__name__)

FAMILIES = ("vitdet", "mimdet", "convnext", "swin")
D2_FORMAT = "d2"
# Detection order of the formats we know of: specific before generic. Formats a
# family adds later are tried after these and before ``d2``.
DETECTION_ORDER = (
    "vitdet_zoo",
    "mimdet",
    "detectron2_swin",
    "mae_full",
    "mae",
    "timm_vit",
    "official_convnext",
    "timm_convnext",
    "official_swin",
    "timm_swin",
)
DESCRIPTIONS = {
    "vitdet_zoo": "ViTDet detector (detectron2 model-zoo .pkl or a training checkpoint)",
    "mimdet": "MIMDet detector (reference release or a training checkpoint)",
    "detectron2_swin": "Swin detector of detectron2's ViTDet project",
    "mae_full": "MAE encoder + decoder",
    "mae": "MAE encoder only",
    "timm_vit": "timm ViT classifier",
    "official_convnext": "official ConvNeXt (facebookresearch/ConvNeXt)",
    "timm_convnext": "timm ConvNeXt",
    "official_swin": "official Swin (microsoft/Swin-Transformer)",
    "timm_swin": "timm Swin",
    D2_FORMAT: "detectron2 training checkpoint (detector keys)",
}
DETECTOR_PREFIXES = ("backbone.", "proposal_generator.", "roi_heads.")
_PAIR = re.compile(r"^is_(\w+)_checkpoint$")


@dataclass
class CheckpointFormat:
    """A checkpoint layout: how to recognise it and, per family, how to convert it."""

    name: str
    description: str
    detect: Callable
    converters: Dict[str, Callable] = field(default_factory=dict)


def is_d2_checkpoint(state_dict):
    """Keys of a detectron2 detector (``backbone.*``, ``roi_heads.*`` ...)."""
    return any(key.startswith(DETECTOR_PREFIXES) for key in state_dict)


def convert_d2_checkpoint(state_dict, model=None):
    """Already detector keys."""
    return dict(state_dict)


def _family_pairs(family):
    """``{format: (is_fn, convert_fn)}`` exported by ``d2backbones.<family>`` ({} if absent)."""
    try:
        module = importlib.import_module(f"d2backbones.{family}")
    except ImportError as error:
        if error.name and error.name.startswith(f"d2backbones.{family}"):
            return {}
        raise
    pairs = {}
    for attribute in dir(module):
        match = _PAIR.match(attribute)
        converter = getattr(module, f"convert_{match.group(1)}_checkpoint", None) if match else None
        if callable(converter):
            pairs[match.group(1)] = (getattr(module, attribute), converter)
    return pairs


def registered_formats() -> List[CheckpointFormat]:
    """Every format the installed families can convert, in detection order (``d2`` last)."""
    formats = {}
    for family in FAMILIES:
        for name, (detect, convert) in _family_pairs(family).items():
            if name == D2_FORMAT:
                continue
            entry = formats.setdefault(name, CheckpointFormat(name, DESCRIPTIONS.get(name, name), detect))
            entry.converters[family] = convert
    rank = {name: i for i, name in enumerate(DETECTION_ORDER)}
    ordered = sorted(formats.values(), key=lambda f: rank.get(f.name, len(rank)))
    d2 = CheckpointFormat(D2_FORMAT, DESCRIPTIONS[D2_FORMAT], is_d2_checkpoint, {"*": convert_d2_checkpoint})
    return ordered + [d2]


def get_format(name):
    """The format called ``name``; raises CheckpointError listing the known ones."""
    formats = {f.name: f for f in registered_formats()}
    if name not in formats:
        raise CheckpointError(f"unknown checkpoint format {name!r}; known formats: {', '.join(formats)}")
    return formats[name]


def detect_format(state_dict) -> Optional[CheckpointFormat]:
    """The first format whose ``is_*`` function accepts ``state_dict``; None if none does."""
    for checkpoint_format in registered_formats():
        if checkpoint_format.detect(state_dict):
            return checkpoint_format
    return None


def model_family(model):
    """The family of ``model``'s backbone ("vitdet", "mimdet", "convnext", "swin"), or None.

    Read from the module path of its classes: ours (``d2backbones.<family>``) or
    detectron2's own ViT and Swin.
    """
    if model is None:
        return None
    detectron2_names = {"vit": "vitdet", "swin": "swin"}
    for _, module in model.named_modules():
        parts = type(module).__module__.split(".")
        if parts[0] == "d2backbones" and len(parts) > 1 and parts[1] in FAMILIES:
            return parts[1]
        if parts[:3] == ["detectron2", "modeling", "backbone"] and len(parts) > 3 and parts[3] in detectron2_names:
            return detectron2_names[parts[3]]
    return None


def convert_state_dict(state_dict, checkpoint_format, model=None, family=None):
    """Apply the converter of ``family`` (default: the model's) for ``checkpoint_format``.

    Raises:
        CheckpointError: no family that reads this format matches the model.
    """
    converters = checkpoint_format.converters
    if "*" in converters:
        return converters["*"](state_dict, model)
    family = family or model_family(model)
    if family in converters:
        return converters[family](state_dict, model)
    if family is None and len(converters) >= 1:
        chosen = next(iter(converters))
        logger.info("Converting the %s checkpoint with the %s converter.", checkpoint_format.name, chosen)
        return converters[chosen](state_dict, model)
    raise CheckpointError(
        f"the checkpoint is a {checkpoint_format.description} ({checkpoint_format.name!r}), which the "
        f"{', '.join(converters)} backbone(s) read, but the model's backbone is {family or 'of unknown family'}"
    )
