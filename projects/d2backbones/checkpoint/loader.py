"""One checkpoint loader for every family, behind ``train.init_checkpoint``.

    report = load_checkpoint(model, "zoo://vitdet/coco/mask_rcnn_vitdet_b_100ep")

1. resolves the source (local path, ``detectron2://``, ``https://``, ``zoo://``;
   see :mod:`.sources`), downloading into the cache when needed;
2. reads the file without running code from it (:mod:`.safe_load`), and refuses
   one with NaN or infinite weights;
3. detects its format and applies the family's conversion (:mod:`.formats`);
4. loads the weights whose shapes fit (:func:`load_matching_shapes`);
5. logs a per-module table of matched / missing / unexpected / mismatched keys
   (:mod:`.report`), and refuses a load that gave the backbone nothing, or that
   skipped backbone weights for their shape unless ``allow_backbone_mismatch``.

Options may be given as arguments or appended to the checkpoint string, like
detectron2's ``?matching_heuristics=True``: ``?allow_unsafe=True``,
``?allow_backbone_mismatch=True``.
"""
import logging

import numpy as np
import torch
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts

from ..utils import unwrap_parallel
from .formats import convert_state_dict, detect_format, get_format, registered_formats
from .remap import unwrap_state_dict
from .report import BACKBONE_PREFIX, LoadReport
from .safe_load import CheckpointError, CorruptCheckpointError, read_checkpoint_file
from .sources import resolve_source

__all__ = ["load_checkpoint", "load_matching_shapes", "read_state_dict", "convert_checkpoint_file"]

logger = logging.getLogger("d2backbones")

# Keys detectron2 never expects in a checkpoint: config constants and derived buffers.
IGNORED_MISSING = ("pixel_mean", "pixel_std")
IGNORED_UNEXPECTED = ("anchor_generator.cell_anchors",)


def _to_tensors(state):
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}


def _check_finite(state_dict, source):
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CorruptCheckpointError(
            f"checkpoint {source.path} has NaN or infinite values in {len(bad)} of its {len(state_dict)} weights "
            f"({shown}): it was saved from a diverged run or is damaged. Use an earlier checkpoint."
        )


def read_state_dict(checkpoint, allow_unsafe=None):
    """Read a checkpoint string into ``(tensor_dict, source, raw)``, without a model.

    ``raw`` is the file's top-level object (for flags such as detectron2's
    ``matching_heuristics``); numpy arrays (``.pkl`` files) become tensors. This is
    every check a file can fail before it meets a model, so a command line can run it
    before building one.

    Raises:
        CheckpointError (a ValueError): unreadable, unsafe, not a state dict, or with
            NaN / infinite weights.
        FileNotFoundError: a local path that does not exist.
    """
    source = resolve_source(checkpoint)
    unsafe = source.options.get("allow_unsafe", False) if allow_unsafe is None else allow_unsafe
    raw = read_checkpoint_file(source.path, allow_unsafe=unsafe)
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        raw = {**raw, "model": _to_tensors(raw["model"])}
    elif isinstance(raw, dict):
        raw = _to_tensors(raw)
    try:
        state_dict = unwrap_state_dict(raw)
    except ValueError as error:
        raise CorruptCheckpointError(f"{source.path} is not a model checkpoint: {error}") from None
    _check_finite(state_dict, source)
    return state_dict, source, raw


def load_matching_shapes(model, state_dict):
    """Load the entries of ``state_dict`` whose shapes fit ``model`` (``strict=False``).

    numpy arrays become tensors; keys the model does not have are ignored.

    Returns:
        ``[(key, checkpoint_shape, model_shape)]`` of the entries skipped for their shape.
    """
    model_state = model.state_dict()
    tensors = _to_tensors(state_dict)
    mismatched = [
        (k, tuple(v.shape), tuple(model_state[k].shape))
        for k, v in tensors.items()
        if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    ]
    skipped = {m[0] for m in mismatched}
    model.load_state_dict({k: v for k, v in tensors.items() if k not in skipped}, strict=False)
    return mismatched


def _convert(state_dict, model, checkpoint_format, family, source):
    if checkpoint_format == "auto":
        detected = detect_format(state_dict)
    else:
        detected = get_format(checkpoint_format)
    if detected is None:
        known = ", ".join(f.name for f in registered_formats())
        raise CheckpointError(
            f"cannot tell the format of {source.uri}: its keys ({', '.join(sorted(state_dict)[:5])}, ...) match none "
            f"of {known}. Convert it to detector keys, or append ?matching_heuristics=True to let detectron2 "
            "match keys by name"
        )
    logger.info("Checkpoint %s: %s.", source.uri, detected.description)
    return detected, convert_state_dict(state_dict, detected, model, family)


def load_checkpoint(
    model,
    checkpoint,
    *,
    checkpoint_format="auto",
    family=None,
    allow_unsafe=None,
    allow_backbone_mismatch=None,
    require_backbone_weights=True,
):
    """Load ``checkpoint`` into ``model`` and return the :class:`LoadReport`.

    Args:
        model: the detector (DDP-wrapped or not).
        checkpoint: path, ``detectron2://``, ``https://`` or ``zoo://`` string, with optional ``?options``.
        checkpoint_format: "auto" or a format name (``tools/convert_checkpoint.py --list``).
        family: converter family to use; default: the model's.
        allow_unsafe: allow full unpickling (code execution) for files that need it.
        allow_backbone_mismatch: load even when backbone weights are skipped for their shape.
        require_backbone_weights: refuse a load that gave the backbone no weight.

    Raises:
        CheckpointError (a ValueError): unreadable, unsafe or unrecognised file, or a
            refused load (its message says which keys and which flag overrides it).
    """
    model = unwrap_parallel(model)
    state_dict, source, raw = read_state_dict(checkpoint, allow_unsafe=allow_unsafe)
    heuristics = source.options.get("matching_heuristics", False) or (
        isinstance(raw, dict) and bool(raw.get("matching_heuristics", False))
    )
    model_state = model.state_dict()
    if heuristics and detect_format(state_dict) is None and checkpoint_format == "auto":
        logger.info("Checkpoint %s: unrecognised format, matching keys by name (detectron2's heuristics).", source.uri)
        format_name = None
        converted = align_and_update_state_dicts(
            model_state, state_dict, c2_conversion=isinstance(raw, dict) and raw.get("__author__") == "Caffe2"
        )
    else:
        detected, converted = _convert(state_dict, model, checkpoint_format, family, source)
        format_name = detected.name

    mismatched = load_matching_shapes(model, converted)
    mismatched_keys = {m[0] for m in mismatched}
    report = LoadReport(
        source=source.uri,
        checkpoint_format=format_name,
        matched=[k for k in model_state if k in converted and k not in mismatched_keys],
        missing=[k for k in model_state if k not in converted and not k.endswith(IGNORED_MISSING)],
        unexpected=[k for k in converted if k not in model_state and not any(p in k for p in IGNORED_UNEXPECTED)],
        mismatched=mismatched,
        # A pretraining model says that all of it is backbone.
        backbone_prefix=getattr(model, "backbone_prefix", BACKBONE_PREFIX),
    )
    logger.info("%s", report)
    _enforce(report, source, allow_backbone_mismatch, require_backbone_weights)
    return report


def _enforce(report, source, allow_backbone_mismatch, require_backbone_weights):
    if require_backbone_weights and not report.backbone_matched:
        raise CheckpointError(
            f"checkpoint {source.uri} gave the backbone no weights ({len(report.matched)} keys matched elsewhere, "
            f"{len(report.unexpected)} unexpected, e.g. {', '.join(report.unexpected[:3]) or 'none'}): it does not "
            "belong to this model's backbone. Check the config and the checkpoint."
        )
    allowed = source.options.get("allow_backbone_mismatch", False) if allow_backbone_mismatch is None else allow_backbone_mismatch
    bad = report.backbone_mismatched
    if bad and not allowed:
        shown = "; ".join(f"{k}: checkpoint {c} vs model {m}" for k, c, m in bad[:3])
        raise CheckpointError(
            f"{len(bad)} backbone weights of {source.uri} do not fit the model's shapes ({shown}"
            f"{' ...' if len(bad) > 3 else ''}), so they would stay untrained. If that is intended, append "
            "?allow_backbone_mismatch=True to the checkpoint (or pass allow_backbone_mismatch=True)."
        )


def convert_checkpoint_file(checkpoint, output, *, checkpoint_format="auto", family=None, model=None, allow_unsafe=None):
    """Write ``checkpoint`` converted to detector keys to ``output`` (a ``.pth``).

    Returns ``(format_name, number_of_keys)``.
    """
    state_dict, source, _ = read_state_dict(checkpoint, allow_unsafe=allow_unsafe)
    detected, converted = _convert(state_dict, model, checkpoint_format, family, source)
    torch.save({"model": converted, "__author__": f"d2backbones convert_checkpoint from {detected.name}"}, output)
    return detected.name, len(converted)
