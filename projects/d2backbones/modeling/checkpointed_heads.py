"""detectron2's RPN, box and mask heads with their activations recomputed in backward.

A training step keeps, for backward, every activation of the heads: for MIMDet-B on an
800x1216 image, the 2-conv RPN head's 256-channel maps over P2-P6 and the 4conv1fc box
head's conv and BatchNorm inputs over 512 RoIs (recomputing them took 158 and 153 MB off
the step's peak memory growth, measured on 2026-12-07, BENCHMARKS.md). Each head below
is the detectron2 head it subclasses, with the same parameters, state-dict keys and
outputs; in training, with grad enabled, its forward runs under non-reentrant
``torch.utils.checkpoint``, so only its input is kept and backward runs its forward once
more. That second forward is the cost (the MIMDet-B step above: 54.9 against 52.1 s on
one CPU thread, 5%). Pick them in a config (as
``configs/MIMDet/COCO/*_heads_recomputed.py`` does):

    model.proposal_generator.head._target_ = CheckpointedRPNHead
    model.roi_heads.box_head._target_ = CheckpointedFastRCNNConvFCHead
    model.roi_heads.mask_head._target_ = CheckpointedMaskRCNNConvUpsampleHead

BatchNorm in a head (the box and mask head convs' ``conv_norm``) updates its running
statistics in each forward; :func:`recompute_in_backward` restores them after the
recomputation, so they move once per step, as without checkpointing. A BatchNorm
synchronised across processes (``NaiveSyncBatchNorm``, ``nn.SyncBatchNorm``) repeats its
all-reduce in the recomputation, inside DDP's backward; the tests cover one process
only, so that multi-process path is untested.
"""
import contextlib
from functools import partial

import torch
import torch.utils.checkpoint
from detectron2.modeling import RPN_HEAD_REGISTRY
from detectron2.modeling.proposal_generator import StandardRPNHead
from detectron2.modeling.roi_heads import ROI_BOX_HEAD_REGISTRY, ROI_MASK_HEAD_REGISTRY, FastRCNNConvFCHead
from detectron2.modeling.roi_heads import MaskRCNNConvUpsampleHead
from torch import nn

__all__ = [
    "CheckpointedFastRCNNConvFCHead",
    "CheckpointedMaskRCNNConvUpsampleHead",
    "CheckpointedRPNHead",
    "recompute_in_backward",
]


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


@RPN_HEAD_REGISTRY.register()
class CheckpointedRPNHead(StandardRPNHead):
    """``StandardRPNHead`` whose activations are recomputed in backward.

    Shapes: [(N, C, Hi, Wi)] -> ([(N, A, Hi, Wi)], [(N, A * box_dim, Hi, Wi)]).
    """

    def forward(self, features):
        return recompute_in_backward(self, super().forward, features)


@ROI_BOX_HEAD_REGISTRY.register()
class CheckpointedFastRCNNConvFCHead(FastRCNNConvFCHead):
    """``FastRCNNConvFCHead`` whose activations are recomputed in backward.

    Shapes: (R, C, P, P) pooled RoI features -> (R, fc_dim), or (R, C', P, P) with no fc.
    """

    def forward(self, x):
        return recompute_in_backward(self, super().forward, x)


@ROI_MASK_HEAD_REGISTRY.register()
class CheckpointedMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """``MaskRCNNConvUpsampleHead`` whose mask logits' activations are recomputed in
    backward (the loss, which reads the instances and the event storage, runs once).

    Shapes: ``layers``: (R, C, P, P) pooled RoI features -> (R, K, 2P, 2P) mask logits.
    """

    def layers(self, x):
        return recompute_in_backward(self, super().layers, x)
