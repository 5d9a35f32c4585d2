"""Loading a LazyConfig and applying ``key=value`` overrides with clear errors.

Override values follow detectron2's syntax (hydra's grammar when hydra is
installed, else python literals); a value neither can parse is taken as the
plain string, so ``train.output_dir=runs/a=b`` works. A value must fit the type
the config has there (an ``int`` where an int is, a number where a float is, a
bool where a bool is, a section where a section is).

A config whose images are resized to one square side keeps that side at
:data:`IMAGE_SIZE_KEY` (``dataloader.image_size``): the mapper, the model's
square padding and the sizes derived from it read it by interpolation, so one
override changes all of them, and :func:`check_image_size` refuses a side the
model cannot take.
"""
import ast
import difflib
import functools
import inspect
import os

from detectron2.config import LazyConfig
from detectron2.utils.registry import locate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UsageError

try:
    from hydra.core.override_parser.overrides_parser import OverridesParser
except ImportError:
    OverridesParser = None

REQUIRED_SECTIONS = ("model", "dataloader", "optimizer", "lr_multiplier", "train")
# Engine settings a config may leave out; present here so that they can be overridden.
ENGINE_TRAIN_DEFAULTS = {
    # "stop": a NaN/Inf loss ends training with a message; "skip": the step is dropped and counted.
    "non_finite_loss": "stop",
    # True: an unreadable image is an error (as --strict-data) instead of being skipped.
    "strict_data": False,
}


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
        raise UsageError(
            f"{path} is not a LazyConfig: pass a python config file (configs/**/*.py); "
            f"detectron2's yacs .yaml configs are not supported"
        )
    try:
        cfg = LazyConfig.load(path)
    except Exception as error:  # the file is user code: any failure means "not a usable config"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(f"{path} is not a LazyConfig: loading it raised {type(error).__name__}: {first_line}") from error
    missing = [name for name in REQUIRED_SECTIONS if name not in cfg]
    if missing:
        raise UsageError(
            f"{path} is not a training LazyConfig: it defines no {', '.join(missing)} "
            f"(expected top-level {', '.join(REQUIRED_SECTIONS)})"
        )
    if isinstance(cfg.train, DictConfig):
        for key, value in ENGINE_TRAIN_DEFAULTS.items():
            cfg.train.setdefault(key, value)
    for override in overrides:
        apply_override(cfg, override)
    check_image_size(cfg)
    return cfg


IMAGE_SIZE_KEY = "dataloader.image_size"
# The multiple of the coarsest pyramid stride that the image side must be, set beside it.
IMAGE_SIZE_MULTIPLE_KEY = "dataloader.image_size_multiple"


def check_image_size(cfg):
    """Raise :class:`UsageError` if :data:`IMAGE_SIZE_KEY` is not a positive multiple of
    :data:`IMAGE_SIZE_MULTIPLE_KEY`.

    A side that is not one would still run, but not as written: detectron2 pads the
    batch further, up to the next multiple, so the ViT's rel-pos tables and
    ``pos_embed`` grid (sized by ``img_size``) would be interpolated at every step.
    """
    size = OmegaConf.select(cfg, IMAGE_SIZE_KEY, default=None)
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int):
        raise UsageError(
            f"{IMAGE_SIZE_KEY}={size!r} is not an int: set the image side in pixels, e.g. {IMAGE_SIZE_KEY}=320"
        )
    multiple = OmegaConf.select(cfg, IMAGE_SIZE_MULTIPLE_KEY, default=1)
    if size >= multiple and size % multiple == 0:
        return
    lower, upper = max(size // multiple, 1) * multiple, max(-(-size // multiple), 1) * multiple
    fixes = " or ".join(f"{IMAGE_SIZE_KEY}={side}" for side in sorted({lower, upper}))
    raise UsageError(
        f"{IMAGE_SIZE_KEY}={size} is not a positive multiple of {multiple}, the coarsest stride of this "
        f"model's feature pyramid: use {fixes}"
    )


def scale_to_image_size(values, image_size, reference_size):
    """``values`` (numbers or nested lists of them, e.g. anchor sizes) chosen for
    ``reference_size`` px inputs, scaled to ``image_size`` px ones.

    For a config: ``L(scale_to_image_size)(values=..., image_size="${dataloader.image_size}", ...)``
    keeps such sizes in proportion to the images when the image side is overridden.
    """
    if isinstance(values, (list, tuple, ListConfig)):
        return [scale_to_image_size(value, image_size, reference_size) for value in values]
    return values * image_size / reference_size


@functools.lru_cache(maxsize=1)
def _hydra_parser():
    return OverridesParser.create()


def parse_override_value(text):
    """The python value of an override's right-hand side; the text itself if it does not parse."""
    if OverridesParser is not None:
        try:
            parsed = _hydra_parser().parse_override(f"key={text}")
        except Exception:  # hydra raises assorted types on text outside its grammar
            return text
        return text if parsed.is_sweep_override() else parsed.value()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _type_name(value):
    return "a section" if isinstance(value, (DictConfig, dict)) else f"a {type(value).__name__}"


def check_override_value(key, current, value, text):
    """Raise :class:`UsageError` if ``value`` cannot replace ``current`` at ``key``."""
    if current is None or isinstance(current, str) and current.startswith("${"):
        return
    if isinstance(current, bool):
        fits = isinstance(value, bool)
    elif isinstance(current, int):
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(current, DictConfig):
        fits = isinstance(value, dict) or value is None
    else:
        return
    if not fits:
        expected = {bool: "a bool", int: "an int", float: "a number"}.get(type(current), "a section (dict)")
        now = "" if isinstance(current, DictConfig) else f" (now {current!r})"
        raise UsageError(f"type mismatch for {key}: it takes {expected}{now}, but {text!r} is {_type_name(value)}")


def _current_value(cfg, key):
    """The value at ``key`` without resolving interpolations; None when unset."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, ListConfig):
            node = node._get_node(int(part))
        elif isinstance(node, DictConfig) and part in node:
            node = node._get_node(part)
        else:
            return None
        if not isinstance(node, (DictConfig, ListConfig)):
            node = node._value()
    return node


def apply_override(cfg, override):
    """Apply one ``key=value`` override to ``cfg`` in place, after checking the key and the
    value's type. Any problem raises :class:`UsageError` with one line."""
    check_override_key(cfg, override)
    key, _, text = override.partition("=")
    value = parse_override_value(text)
    check_override_value(key, _current_value(cfg, key), value, text)
    try:
        OmegaConf.update(cfg, key, value, merge=True)
    except (OmegaConfBaseException, ValueError, TypeError) as error:
        raise UsageError(f"cannot set {key} to {text!r}: {type(error).__name__}: {str(error).splitlines()[0]}") from error


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
