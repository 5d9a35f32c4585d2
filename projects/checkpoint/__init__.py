"""Checkpoint loading: format detection, per-family conversion, and key remapping."""
from .remap import add_prefix, drop_keys, rename_keys, strip_prefixes, unwrap_state_dict

__all__ = ["add_prefix", "drop_keys", "rename_keys", "strip_prefixes", "unwrap_state_dict"]
