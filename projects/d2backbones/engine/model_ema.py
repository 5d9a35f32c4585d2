"""An exponential moving average of the weights, kept during training (``train.model_ema``).

The average itself is timm's ``ModelEmaV3``: after every step each floating-point
tensor of the state dict (parameters and buffers) becomes
``ema = decay * ema + (1 - decay) * weight``; integer buffers are copied.
"""
import logging

import torch
from detectron2.engine import HookBase
from timm.utils import ModelEmaV3

from ..utils import unwrap_parallel

__all__ = ["ModelEmaHook", "RestorableModelEma", "build_model_ema", "load_ema_weights"]

logger = logging.getLogger("d2backbones")


class RestorableModelEma(ModelEmaV3):
    """timm's ``ModelEmaV3`` that remembers whether a checkpoint restored it.

    It is the checkpointable ``model_ema``: its state dict is the averaged tensors
    under ``module.``, so a resume restores the average exactly."""

    restored = False

    def load_state_dict(self, state_dict, strict=True):
        result = super().load_state_dict(state_dict, strict=strict)
        self.restored = True
        return result


def build_model_ema(cfg, model):
    """A :class:`RestorableModelEma` of ``model`` as ``train.model_ema`` asks, or None when it is off."""
    ema_cfg = cfg.train.get("model_ema", {})
    if not ema_cfg.get("enabled", False):
        return None
    decay = ema_cfg.get("decay", 0.9998)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"train.model_ema.decay={decay} is outside [0, 1): set it to e.g. 0.9998.")
    logger.info("Keeping an EMA of the weights with decay %s.", decay)
    return RestorableModelEma(unwrap_parallel(model), decay=decay)


class ModelEmaHook(HookBase):
    """Updates the average after each optimizer step; registered before the hooks that
    evaluate or checkpoint, so they see the average of the step that just ended.

    When no checkpoint restored the average (a fresh run, ``train.init_checkpoint``,
    or a resume from a checkpoint saved without EMA), it starts at the loaded weights.

    Args:
        ema (RestorableModelEma): the average.
    """

    def __init__(self, ema):
        self.ema = ema

    def before_train(self):
        if not self.ema.restored:
            self.ema.set(unwrap_parallel(self.trainer.model))

    def after_step(self):
        # A fixed decay (no step-based warm-up): the state is the averaged tensors alone.
        self.ema.update(unwrap_parallel(self.trainer.model))


def load_ema_weights(model, path):
    """Load the ``model_ema`` entry of a checkpoint our trainer wrote into ``model``
    (for ``--eval-only`` with ``train.model_ema.use_for_eval=True``)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "model_ema" not in checkpoint:
        raise ValueError(
            f"{path} has no model_ema entry: train with train.model_ema.enabled=True, "
            "or set train.model_ema.use_for_eval=False."
        )
    prefix = "module."
    unwrap_parallel(model).load_state_dict({k[len(prefix):]: v for k, v in checkpoint["model_ema"].items()})
    logger.info("Evaluating the EMA weights of %s.", path)
