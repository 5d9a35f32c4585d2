"""Finding a config by its path under ``configs/`` and the checkpoint trained with it."""
import difflib
from pathlib import Path

import torch
from detectron2.config import LazyConfig, instantiate

from ..checkpoint import load_checkpoint
from ..checkpoint.zoo import ZOO

__all__ = ["configs_root", "get", "get_checkpoint_url", "get_config", "get_config_file", "list_configs", "trained_configs"]

# Where the configs are: a wheel installs them beside this file (setup.py maps configs/
# to d2backbones.model_zoo.configs); a checkout, editable install included, keeps them
# at the top of the repository, three folders above this one.
_PACKAGED_CONFIGS = Path(__file__).with_name("configs")
_CHECKOUT_CONFIGS = Path(__file__).resolve().parents[3] / "configs"
# Zoo entries name their config from the repository root.
_ZOO_CONFIG_PREFIX = "configs/"


def configs_root():
    """The folder that config paths are relative to: the installed copy, else the checkout's."""
    for root in (_PACKAGED_CONFIGS, _CHECKOUT_CONFIGS):
        if root.is_dir():
            return root
    raise RuntimeError(
        f"d2backbones' configs are in neither {_PACKAGED_CONFIGS} nor {_CHECKOUT_CONFIGS}: reinstall it with `pip install .`"
    )


def list_configs():
    """Every config path that :func:`get_config` takes (``common/`` fragments included), sorted."""
    root = configs_root()
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.py"))


def _published_detectors():
    """``{config path: zoo entry}`` of the configs whose trained detector is in the zoo."""
    return {
        entry.config[len(_ZOO_CONFIG_PREFIX):]: entry
        for entry in ZOO.values()
        if entry.kind == "detector" and entry.config.startswith(_ZOO_CONFIG_PREFIX)
    }


def trained_configs():
    """The config paths that :func:`get_checkpoint_url` has a checkpoint for, sorted."""
    return sorted(_published_detectors())


def get_config_file(config_path):
    """The file of ``config_path`` (relative to ``configs/``, e.g. ``"demo/vitdet_tiny.py"``).

    Raises:
        RuntimeError: no config has that path; the message names the closest ones.
    """
    path = configs_root() / config_path
    if path.is_file() and path.suffix == ".py":
        return str(path)
    close = difflib.get_close_matches(config_path, list_configs(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RuntimeError(
        f"no config {config_path!r} in d2backbones' model zoo{hint} (all: d2backbones.model_zoo.list_configs())"
    )


def get_checkpoint_url(config_path):
    """The URL of the published detector trained with ``config_path``.

    No download: the file is fetched (and cached) when a checkpoint loader opens the URL.

    Raises:
        RuntimeError: the config exists but no checkpoint trained with it is published.
    """
    get_config_file(config_path)
    entry = _published_detectors().get(config_path)
    if entry is None:
        raise RuntimeError(
            f"no published checkpoint was trained with {config_path}: use trained=False, or one of "
            f"d2backbones.model_zoo.trained_configs()"
        )
    return entry.url


def get_config(config_path, trained=False):
    """Load ``config_path`` as a LazyConfig.

    Args:
        config_path: path relative to ``configs/``, e.g. ``"ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py"``.
        trained: if True, ``train.init_checkpoint`` is set to the published detector of
            :func:`get_checkpoint_url`; otherwise it stays the config's own (typically an
            ImageNet or MAE backbone, or nothing for a model trained from scratch).
    """
    cfg = LazyConfig.load(get_config_file(config_path))
    if trained:
        cfg.train.init_checkpoint = get_checkpoint_url(config_path)
    return cfg


def get(config_path, trained=False, device=None):
    """Build the model of ``config_path``, with ``train.init_checkpoint`` loaded if it names one.

    Args:
        config_path, trained: as in :func:`get_config`.
        device: where to put the model; default: the config's ``train.device``, else
            CUDA when available, else CPU.

    Returns:
        nn.Module: the detector, in training mode. A checkpoint is downloaded (once,
        into the cache) only if the config or ``trained`` names a remote one.
    """
    cfg = get_config(config_path, trained)
    model = instantiate(cfg.model)
    train = cfg.get("train", {})
    if device is None:
        device = train.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    checkpoint = train.get("init_checkpoint")
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model
