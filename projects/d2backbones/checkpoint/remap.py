"""Checkpoint key remapping, shared by every family's conversion function.

A foreign checkpoint differs from ours by a wrapper key (``model``, ``state_dict``),
by prefixes (``module.``, ``encoder.``), and by renamed sub-modules. Each family's
converter states those differences as data (prefixes and ordered regex rules) and
calls these functions, so no converter re-implements the walk over the keys.
"""
import logging
import re
from typing import Dict, Iterable, Mapping, Sequence, Tuple

import torch

logger = logging.getLogger(__name__)

WRAPPER_KEYS = ("model", "state_dict", "module")


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint file.

    Follows ``model`` / ``state_dict`` / ``module`` wrappers until the values are tensors.
    """
    current = checkpoint
    while isinstance(current, Mapping):
        if current and all(isinstance(v, torch.Tensor) for v in current.values()):
            return dict(current)
        inner = next((current[k] for k in WRAPPER_KEYS if isinstance(current.get(k), Mapping)), None)
        if inner is None:
            break
        current = inner
    raise ValueError(
        "checkpoint holds no state dict: expected a dict of tensors, possibly under one of "
        f"{WRAPPER_KEYS}; top-level keys are {sorted(checkpoint)[:10] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__}"
    )


def strip_prefixes(state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> Dict[str, torch.Tensor]:
    """Remove the first matching prefix from every key (e.g. ``module.``, ``encoder.``)."""
    prefixes = tuple(prefixes)
    out = {}
    for key, value in state_dict.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """Put every key under ``prefix`` (e.g. ``backbone.bottom_up.``)."""
    return {prefix + key: value for key, value in state_dict.items()}


def rename_keys(state_dict: Mapping[str, torch.Tensor], rules: Sequence[Tuple[str, str]]) -> Dict[str, torch.Tensor]:
    """Apply ordered ``(regex, replacement)`` rules to every key, each rule to the
    result of the previous one (``re.sub`` semantics, so groups like ``\\1`` work).

    Raises if two source keys end up with the same name, which would silently drop weights.
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out = {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, replacement in compiled:
            new_key = pattern.sub(replacement, new_key)
        if new_key in out:
            raise ValueError(f"key remapping maps two checkpoint keys onto {new_key!r} (the second from {key!r})")
        out[new_key] = value
    return out


def drop_keys(
    state_dict: Mapping[str, torch.Tensor], patterns: Iterable[str], source: str = ""
) -> Tuple[Dict[str, torch.Tensor], list]:
    """Split off keys matching any regex in ``patterns`` (classifier heads, buffers we
    recompute). Returns ``(kept, dropped_key_names)``; with ``source`` (e.g. "official
    Swin") the dropped names are also logged, so every skipped weight is reported."""
    compiled = [re.compile(p) for p in patterns]
    kept, dropped = {}, []
    for key, value in state_dict.items():
        if any(p.search(key) for p in compiled):
            dropped.append(key)
        else:
            kept[key] = value
    if source and dropped:
        logger.info("%s checkpoint: skipped %d keys without a detector counterpart: %s", source, len(dropped), dropped)
    return kept, dropped
