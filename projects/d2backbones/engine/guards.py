"""Non-finite losses: stop cleanly (default) or skip the step (opt-in).

detectron2 notices a NaN loss only on rank 0, inside metric writing: other ranks
step on NaN gradients and wait forever, and the hooks that run after a failed
training (final checkpoint, evaluation, writers) still write. Here every rank
checks the loss terms after the backward pass and agrees before the optimizer
step, so a bad step changes no weight and no file.

``train.non_finite_loss``:
    ``"stop"``: raise :class:`NonFiniteLossError` naming the iteration, the loss terms
    and the last good checkpoint; afterwards only the metric writers flush what
    the earlier steps recorded.
    ``"skip"``: drop the step's gradients (no weight, optimizer moment or file
    changes), count it as ``skipped_steps`` in the metrics, and go on.
"""
import logging
import math

import torch
import torch.distributed as dist
from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer
from detectron2.engine.hooks import PeriodicWriter
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from .errors import TrainingStopped

__all__ = ["GuardedAMPTrainer", "GuardedSimpleTrainer", "NonFiniteLossError", "NonFiniteLossGuard"]

logger = logging.getLogger("d2backbones")
NON_FINITE_LOSS_MODES = ("stop", "skip")


class NonFiniteLossError(TrainingStopped, FloatingPointError):
    """A loss term was NaN or infinite; the message says where and what to do."""


def _any_rank(flag):
    """Whether ``flag`` is true on any rank (all ranks must call)."""
    if comm.get_world_size() == 1:
        return flag
    value = torch.tensor([1 if flag else 0])
    dist.all_reduce(value, group=comm._get_global_gloo_group())
    return bool(value.item())


def _format_terms(terms):
    return ", ".join(f"{name}={value:.6g}" for name, value in terms.items())


class NonFiniteLossGuard(HookBase):
    """Checks the loss terms of each step before the optimizer sees its gradients.

    The terms are captured with a forward hook on the trainer's model, so the
    trainer's ``run_step`` is detectron2's own.
    """

    def __init__(self, mode="stop", checkpointer=None):
        if mode not in NON_FINITE_LOSS_MODES:
            raise ValueError(f"train.non_finite_loss={mode!r}: expected one of {', '.join(NON_FINITE_LOSS_MODES)}")
        self.mode = mode
        self.checkpointer = checkpointer
        self.skipped_steps = 0
        self._loss_terms = None

    def before_train(self):
        self.trainer.model.register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        if module.training and isinstance(output, dict):
            self._loss_terms = output

    def before_step(self):
        self._loss_terms = None
        self.trainer.skip_this_step = False

    def after_backward(self):
        terms = {name: float(value.detach()) for name, value in (self._loss_terms or {}).items()}
        bad_here = not all(math.isfinite(v) for v in terms.values())
        if not _any_rank(bad_here):
            return
        per_rank = comm.all_gather(terms)
        bad_ranks = {rank: t for rank, t in enumerate(per_rank) if not all(map(math.isfinite, t.values()))}
        where = "; ".join(f"rank {rank}: {_format_terms(t)}" for rank, t in bad_ranks.items())
        iteration = self.trainer.iter
        if self.mode == "skip":
            self.skipped_steps += 1
            self.trainer.drop_gradients()
            self.trainer.skip_this_step = True
            logger.warning(
                "Non-finite loss at iteration %d (%s): step skipped (%d so far).", iteration, where, self.skipped_steps
            )
            return
        self.trainer.stopped = True
        last = self.checkpointer.get_checkpoint_file() if self.checkpointer else ""
        raise NonFiniteLossError(
            f"non-finite loss at iteration {iteration}: {where}. Stopped before the optimizer step: "
            f"no weight or file was written after iteration {iteration - 1}. Last good checkpoint: "
            f"{last or 'none (no checkpoint was saved yet)'}. Resume from it with --resume (check the data "
            f"and the learning rate first), or set train.non_finite_loss=skip to skip such steps."
        )

    def after_step(self):
        if self.skipped_steps:
            get_event_storage().put_scalar("skipped_steps", self.skipped_steps, smoothing_hint=False)

    def state_dict(self):
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict):
        self.skipped_steps = state_dict["skipped_steps"]


class _GuardedTrainerMixin:
    """Trainer side of :class:`NonFiniteLossGuard`: a skipped step writes no loss
    metrics, and a stopped training runs no ``after_train`` hook."""

    stopped = False
    skip_this_step = False

    def drop_gradients(self):
        """Make the coming ``optimizer.step()`` a no-op for every parameter."""
        self.optimizer.zero_grad(set_to_none=True)

    def _write_metrics(self, loss_dict, data_time, prefix="", iter=None):
        if not self.skip_this_step:
            super()._write_metrics(loss_dict, data_time, prefix, iter)

    def after_train(self):
        if not self.stopped:
            super().after_train()
            return
        # Only the writers run: they flush what the steps before the bad one recorded,
        # and the bad step's forward diagnostics (no loss value: the guard raised before
        # the step wrote any). Final checkpoint and evaluation do not run.
        self.concurrent_executor.shutdown(wait=True)
        self.storage.iter = self.iter
        for hook in self._hooks:
            if isinstance(hook, PeriodicWriter):
                hook.after_train()


class GuardedSimpleTrainer(_GuardedTrainerMixin, SimpleTrainer):
    """detectron2's ``SimpleTrainer`` for use with :class:`NonFiniteLossGuard`."""


class GuardedAMPTrainer(_GuardedTrainerMixin, AMPTrainer):
    """detectron2's ``AMPTrainer`` for use with :class:`NonFiniteLossGuard`."""

    def drop_gradients(self):
        # GradScaler.step needs gradients to inspect; non-finite ones make it skip
        # the optimizer step (and lower the loss scale, as for an fp16 overflow).
        for group in self.optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.grad.fill_(float("nan"))
