"""Checkpoint loading: sources, safe reading, format detection, per-family conversion,
key remapping and the load report."""
from .formats import detect_format, get_format, model_family, registered_formats
from .loader import convert_checkpoint_file, load_checkpoint, read_state_dict
from .remap import add_prefix, drop_keys, rename_keys, strip_prefixes, unwrap_state_dict
from .report import LoadReport
from .safe_load import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError, read_checkpoint_file
from .sources import DownloadError, cache_path_for, resolve_source
from .zoo import ZOO, get_zoo_entry, zoo_entry_for, zoo_names

__all__ = [
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
