"""Activation checkpointing, decided in one place: a module's forward recomputed in
backward instead of its activations kept, in training with grad enabled only.

BatchNorm updates its running statistics in each training forward, so a recomputation
would move them twice a step; :func:`recompute_in_backward` undoes the recomputation's
update, and the statistics move once, as without checkpointing.
"""
import contextlib
from functools import partial

import torch
import torch.utils.checkpoint
from torch import nn

__all__ = ["recompute_in_backward"]


@contextlib.contextmanager
def _running_statistics_kept(module):
    """Undo, on exit, what the forwards inside did to the BatchNorm running statistics
    of ``module`` (running mean, variance and batch count)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    kept = [(m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for norm, mean, var, count in kept:
                norm.running_mean.copy_(mean)
                norm.running_var.copy_(var)
                norm.num_batches_tracked.copy_(count)


def _recompute_contexts(module):
    """(forward context, recomputation context): ``context_fn`` of torch's checkpoint."""
    return contextlib.nullcontext(), _running_statistics_kept(module)


def recompute_in_backward(module, function, *inputs):
    """``function(*inputs)``, a pure function of tensors computed by ``module``'s
    parameters; in training with grad enabled, its activations are recomputed in the
    backward pass instead of kept, and the recomputation leaves ``module``'s BatchNorm
    running statistics as the forward left them.

    Args:
        module (nn.Module): the module whose parameters and norms ``function`` uses.
        function: a callable of ``inputs``, e.g. ``super().forward``.
        inputs: tensors, or lists of them (non-reentrant checkpointing takes any).
    """
    if not (module.training and torch.is_grad_enabled()):
        return function(*inputs)
    return torch.utils.checkpoint.checkpoint(function, *inputs, use_reentrant=False,
                                             context_fn=partial(_recompute_contexts, module))
