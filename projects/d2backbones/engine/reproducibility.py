"""What makes a resumed run equal to an uninterrupted one, and a check that replicas agree.

* :class:`StepSeeder` seeds python, numpy and torch at every step from
  ``(seed, rank, iteration)``: the random state of step ``k`` (drop path, RPN and
  ROI sampling) is the same whether the run started at 0 or resumed at ``k``.
  The seed is stored in the checkpoint, so ``train.seed=-1`` resumes too.
* :func:`check_replicas_identical` compares a fingerprint of the weights across
  ranks (all ranks must call) and logs it.
* :class:`MetricHistoryKeeper` checkpoints the recent metric values, so the
  smoothed losses logged after a resume equal those of an uninterrupted run.
* :class:`MemoryMonitor` records the resident memory of the process.
"""
import hashlib
import logging
import os
import random

import numpy as np
import psutil
import torch
from detectron2.engine import HookBase
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from ..data.resumable_loader import derive_seed

__all__ = ["MemoryMonitor", "MetricHistoryKeeper", "StepSeeder", "check_replicas_identical", "weights_fingerprint"]

logger = logging.getLogger("d2backbones")


class StepSeeder(HookBase):
    """Reseeds the global generators before every step; ``seed`` is checkpointed."""

    def __init__(self, seed):
        self.seed = seed

    def before_step(self):
        step_seed = derive_seed(self.seed, comm.get_rank(), self.trainer.iter)
        random.seed(step_seed)
        np.random.seed(step_seed)
        torch.manual_seed(step_seed)

    def state_dict(self):
        return {"seed": self.seed}

    def load_state_dict(self, state_dict):
        if state_dict["seed"] != self.seed:
            logger.info("Resuming with the checkpoint's seed %d (not %d).", state_dict["seed"], self.seed)
        self.seed = state_dict["seed"]


def weights_fingerprint(state_dict):
    """sha256 over the names, dtypes, shapes and bytes of a state dict's tensors."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_replicas_identical(model):
    """Log the weights' fingerprint on every rank; raise if ranks differ.

    Returns:
        str: the fingerprint of this rank's weights.
    """
    model = getattr(model, "module", model)
    fingerprint = weights_fingerprint(model.state_dict())
    logger.info("Weights fingerprint on rank %d: sha256 %s", comm.get_rank(), fingerprint)
    if comm.get_world_size() > 1:
        fingerprints = comm.all_gather(fingerprint)
        if len(set(fingerprints)) > 1:
            raise RuntimeError(f"the ranks' weights differ after training: {fingerprints}")
        logger.info("Weights identical on all %d ranks (sha256 %s)", len(fingerprints), fingerprint)
    return fingerprint


class MemoryMonitor(HookBase):
    """Puts ``rss_mb`` (resident set size of this process, MiB) in the metrics every ``period`` steps."""

    def __init__(self, period):
        self.period = max(1, period)
        self.process = psutil.Process(os.getpid())

    def after_step(self):
        if (self.trainer.iter + 1) % self.period == 0:
            rss_mb = self.process.memory_info().rss / 2**20
            get_event_storage().put_scalar("rss_mb", rss_mb, smoothing_hint=False)


class MetricHistoryKeeper(HookBase):
    """Checkpoints the last ``window`` values of every metric, and puts them back on resume.

    detectron2's writers log the median of the last 20 values of each loss; without
    this, the medians logged for 20 steps after a resume would cover fewer steps
    than those of an uninterrupted run.
    """

    def __init__(self, window=20):
        self.window = window
        self._restored = {}

    def before_train(self):
        histories = self.trainer.storage.histories()
        for name, values in self._restored.items():
            for value, iteration in values:
                histories[name].update(value, iteration)

    def state_dict(self):
        histories = self.trainer.storage.histories()
        return {"history": {name: list(buffer.values()[-self.window :]) for name, buffer in histories.items()}}

    def load_state_dict(self, state_dict):
        self._restored = state_dict["history"]
