"""Checkpoint loading: sources, safe reading, format detection, per-family conversion,
key remapping and the load report.

Families add their formats with :func:`register_format` / :func:`register_converter`
(see :mod:`.formats`); the formats no family owns (MAE, ``d2``) are in :mod:`.shared_formats`.
"""
from . import shared_formats
from .formats import (
    CLASSIFIER,
    DETECTOR,
    ENCODER,
    GENERIC,
    PRETRAINING,
    detect_format,
    get_format,
    model_family,
    register_converter,
    register_family,
    register_format,
    registered_families,
    registered_formats,
)
from .loader import convert_checkpoint_file, load_checkpoint, read_state_dict
from .remap import add_prefix, drop_keys, rename_keys, strip_prefixes, unwrap_state_dict
from .report import LoadReport
from .safe_load import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError, read_checkpoint_file
from .sources import DownloadError, cache_path_for, resolve_source
from .zoo import ZOO, get_zoo_entry, zoo_entry_for, zoo_names

__all__ = [
    "CLASSIFIER",
    "DETECTOR",
    "ENCODER",
    "GENERIC",
    "PRETRAINING",
    "register_converter",
    "register_family",
    "register_format",
    "registered_families",
    "shared_formats",
    "CheckpointError",
    "CorruptCheckpointError",
    "DownloadError",
    "LoadReport",
    "UnsafeCheckpointError",
    "ZOO",
    "add_prefix",
    "cache_path_for",
    "convert_checkpoint_file",
    "detect_format",
    "drop_keys",
    "get_format",
    "get_zoo_entry",
    "load_checkpoint",
    "model_family",
    "read_checkpoint_file",
    "read_state_dict",
    "registered_formats",
    "rename_keys",
    "resolve_source",
    "strip_prefixes",
    "unwrap_state_dict",
    "zoo_entry_for",
    "zoo_names",
]
