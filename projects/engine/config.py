"""Loading a LazyConfig and applying ``key=value`` overrides with clear errors."""
import difflib
import inspect
import os

from detectron2.config import LazyConfig
from detectron2.utils.registry import locate
from omegaconf import DictConfig, ListConfig

from .errors import UsageError

REQUIRED_SECTIONS = ("model", "dataloader", "optimizer", "lr_multiplier", "train")


def load_config(path, overrides=()):
    """Load a LazyConfig python file and apply ``a.b.c=value`` overrides.

    Raises:
        UsageError: the file is missing or not a LazyConfig, an override is not of
            the ``key=value`` form, or its key exists neither in the config nor in
            the signature of the object the config will build there.
    """
    if not os.path.isfile(path):
        raise UsageError(f"config file not found: {path} (pass --config-file configs/<Family>/<dataset>/<cfg>.py)")
    if not path.endswith(".py"):
        raise UsageError(f"{path} is not a LazyConfig: pass a python config file (configs/**/*.py)")
    cfg = LazyConfig.load(path)
    missing = [name for name in REQUIRED_SECTIONS if name not in cfg]
    if missing:
        raise UsageError(
            f"{path} is not a training LazyConfig: it defines no {', '.join(missing)} "
            f"(expected top-level {', '.join(REQUIRED_SECTIONS)})"
        )
    for override in overrides:
        check_override_key(cfg, override)
    return LazyConfig.apply_overrides(cfg, list(overrides))


def check_override_key(cfg, override):
    """Raise :class:`UsageError` unless ``override`` names a key the config can take."""
    key, sep, _ = override.partition("=")
    if not sep or not key:
        raise UsageError(f"override {override!r} is not of the form key=value, e.g. train.max_iter=100")
    parts = key.split(".")
    node = cfg
    for depth, part in enumerate(parts):
        parent = ".".join(parts[:depth]) or "<config root>"
        if isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                raise UsageError(f"unknown config key {key!r}: {parent} is a list of {len(node)} items")
            node = node[int(part)]
            continue
        if not isinstance(node, DictConfig):
            raise UsageError(f"unknown config key {key!r}: {parent} is a value, not a section")
        if part in node:
            node = node[part]
            continue
        is_last = depth == len(parts) - 1
        if is_last and _target_accepts(node, part):
            return
        hint = difflib.get_close_matches(part, [str(k) for k in node.keys()], n=1)
        suggestion = f" (did you mean {'.'.join(parts[:depth] + [hint[0]])}?)" if hint else ""
        raise UsageError(f"unknown config key {key!r}: {parent} has no key {part!r}{suggestion}")


def _target_accepts(node, argument):
    """Whether the object a LazyCall node builds takes ``argument`` (a default not set in the file)."""
    target = node.get("_target_")
    if target is None:
        return False
    if isinstance(target, str):
        target = locate(target)
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True
    return argument in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
