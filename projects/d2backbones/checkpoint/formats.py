"""The registry of checkpoint formats: how to recognise each, and which family converts it.

A family declares its formats in its own ``convert.py``, explicitly::

    register_format("timm_swin", "timm Swin", detect=is_timm_swin_checkpoint, priority=CLASSIFIER)
    register_converter("timm_swin", "swin", convert_timm_swin_checkpoint)

and claims its model classes with :func:`register_family`, so that the loader can
tell which family a model belongs to. ``import d2backbones`` imports every family,
which fills this registry the way it fills detectron2's ``BACKBONE_REGISTRY``. This
module names no family.

A format shared by several families (MAE, read by ViTDet for its encoder and by
MIMDet for encoder and decoder) is registered once, with one detect function, by
:mod:`.mae`; each family that reads it registers its converter.

Detection order: formats are tried by ascending ``priority``, then in registration
order (the order of the family imports in ``d2backbones/__init__.py``). The
priorities are bands from specific to generic (:data:`DETECTOR` ... :data:`GENERIC`),
because a generic detect function can also accept a specific layout (every
detector checkpoint is also a "detectron2 training checkpoint").
"""
import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .safe_load import CheckpointError

__all__ = [
    "CLASSIFIER",
    "CheckpointFormat",
    "DETECTOR",
    "ENCODER",
    "GENERIC",
    "PRETRAINING",
    "convert_state_dict",
    "detect_format",
    "get_format",
    "model_family",
    "register_converter",
    "register_family",
    "register_format",
    "registered_families",
    "registered_formats",
]

logger = logging.getLogger(__name__)

# Priority bands, tried first to last.
DETECTOR = 10  # a whole detector of one family: the most specific keys
PRETRAINING = 20  # a pretraining checkpoint with its decoder (encoder keys and more)
ENCODER = 30  # a pretrained encoder alone
CLASSIFIER = 40  # an image classifier (encoder keys plus a head)
GENERIC = 90  # any detector keys
# Converter key of a format every family reads as it is.
ANY_FAMILY = "*"


@dataclass
class CheckpointFormat:
    """A checkpoint layout: how to recognise it and, per family, how to convert it.

    Attributes:
        name (str): what ``--from`` and ``?format=`` take.
        description (str): one line for ``--list`` and error messages.
        detect (callable): ``detect(state_dict) -> bool``.
        priority (int): detection order (lower first), one of the bands above.
        converters (dict[str, callable]): family name -> ``convert(state_dict, model=None)``
            returning detector keys; ``"*"`` for a converter every family uses.
    """

    name: str
    description: str
    detect: Callable
    priority: int
    converters: Dict[str, Callable] = field(default_factory=dict)


_FORMATS: Dict[str, CheckpointFormat] = {}
# family name -> module-path prefixes of the classes that make a model belong to it.
_FAMILY_MODULES: Dict[str, Tuple[str, ...]] = {}


def register_format(name, description, *, detect, priority):
    """Add a checkpoint format; a second format of the same name is refused."""
    if name in _FORMATS:
        raise ValueError(f"checkpoint format {name!r} is registered twice; pick another name")
    _FORMATS[name] = CheckpointFormat(name, description, detect, priority)
    return _FORMATS[name]


def register_converter(format_name, family, convert):
    """Let ``family`` read ``format_name`` with ``convert(state_dict, model=None)``.

    Refuses an unknown format and a second converter for the same (format, family).
    """
    if format_name not in _FORMATS:
        raise ValueError(f"cannot add a {family} converter to unknown checkpoint format {format_name!r}; "
                         "register_format it first")
    converters = _FORMATS[format_name].converters
    if family in converters:
        raise ValueError(f"checkpoint format {format_name!r} already has a {family} converter")
    converters[family] = convert


def register_family(name, module_prefixes):
    """Declare a backbone family and the module paths of its model classes.

    Args:
        name (str): the family, as converters are registered under.
        module_prefixes (tuple[str]): ``type(module).__module__`` prefixes that mark a
            model of this family, e.g. ``("d2backbones.vitdet", "detectron2.modeling.backbone.vit")``.
    """
    if name in _FAMILY_MODULES:
        raise ValueError(f"backbone family {name!r} is registered twice")
    _FAMILY_MODULES[name] = tuple(module_prefixes)


def registered_families() -> List[str]:
    """Names of the registered families, in registration order."""
    return list(_FAMILY_MODULES)


def registered_formats() -> List[CheckpointFormat]:
    """Every registered format, in detection order."""
    return sorted(_FORMATS.values(), key=lambda f: f.priority)


def get_format(name):
    """The format called ``name``; raises CheckpointError listing the known ones."""
    if name not in _FORMATS:
        known = ", ".join(f.name for f in registered_formats())
        raise CheckpointError(f"unknown checkpoint format {name!r}; known formats: {known}")
    return _FORMATS[name]


def detect_format(state_dict) -> Optional[CheckpointFormat]:
    """The first format (in detection order) that accepts ``state_dict``; None if none does."""
    for checkpoint_format in registered_formats():
        if checkpoint_format.detect(state_dict):
            return checkpoint_format
    return None


def _family_of_module_path(module_path):
    for family, prefixes in _FAMILY_MODULES.items():
        if any(module_path == p or module_path.startswith(p + ".") for p in prefixes):
            return family
    return None


def model_family(model):
    """The registered family of ``model``'s backbone, or None.

    The first module of ``model`` whose class lives under a family's declared module
    paths decides.
    """
    if model is None:
        return None
    for _, module in model.named_modules():
        family = _family_of_module_path(type(module).__module__)
        if family is not None:
            return family
    return None


def convert_state_dict(state_dict, checkpoint_format, model=None, family=None):
    """Apply the converter of ``family`` (default: the model's) for ``checkpoint_format``.

    Raises:
        CheckpointError: no family that reads this format matches the model.
    """
    converters = checkpoint_format.converters
    if ANY_FAMILY in converters:
        return converters[ANY_FAMILY](state_dict, model)
    family = family or model_family(model)
    if family in converters:
        return converters[family](state_dict, model)
    if family is None and converters:
        # The family registered first, as the order of the imports in d2backbones/__init__.py.
        chosen = next(iter(converters))
        logger.info("Converting the %s checkpoint with the %s converter.", checkpoint_format.name, chosen)
        return converters[chosen](state_dict, model)
    raise CheckpointError(
        f"the checkpoint is a {checkpoint_format.description} ({checkpoint_format.name!r}), which the "
        f"{', '.join(converters) or 'no'} backbone(s) read, but the model's backbone is {family or 'of unknown family'}"
    )
