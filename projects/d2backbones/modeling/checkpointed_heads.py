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
statistics in each forward; :func:`d2backbones.layers.recompute_in_backward` restores
them after the recomputation, so they move once per step, as without checkpointing. A BatchNorm
synchronised across processes (``NaiveSyncBatchNorm``, ``nn.SyncBatchNorm``) repeats its
all-reduce in the recomputation, inside DDP's backward; the tests cover one process
only, so that multi-process path is untested.
"""
from detectron2.modeling import RPN_HEAD_REGISTRY
from detectron2.modeling.proposal_generator import StandardRPNHead
from detectron2.modeling.roi_heads import ROI_BOX_HEAD_REGISTRY, ROI_MASK_HEAD_REGISTRY, FastRCNNConvFCHead
from detectron2.modeling.roi_heads import MaskRCNNConvUpsampleHead

from ..layers import recompute_in_backward

__all__ = [
    "CheckpointedFastRCNNConvFCHead",
    "CheckpointedMaskRCNNConvUpsampleHead",
    "CheckpointedRPNHead",
]


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
