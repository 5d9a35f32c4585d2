"""The ViTDet step schedule on COCO, as a function of epochs.

At batch 64, 100 epochs of COCO train2017 (118k images) are 184375 iterations,
and the lr drops 10x at iterations 163889 and 177546 (~88.9 and ~96.3 epochs).
Other lengths scale these by ``epochs / 100`` with floor division, which is how
detectron2 derives its ViTDet-H 75-epoch schedule (138281 iterations, drops at
122916 and 133159), so ours match it to the iteration.
"""
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

ITERS_100_EPOCHS = 184375
LR_DROPS_100_EPOCHS = (163889, 177546)
WARMUP_ITERS = 250


def coco_iters(epochs):
    """Training iterations of ``epochs`` COCO epochs at batch 64."""
    return ITERS_100_EPOCHS * epochs // 100


def step_lr_multiplier(epochs, warmup_iters=WARMUP_ITERS):
    """Linear warmup from 0.001x, then 1x / 0.1x / 0.01x steps, over ``coco_iters(epochs)``."""
    max_iter = coco_iters(epochs)
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[1.0, 0.1, 0.01],
            milestones=[drop * epochs // 100 for drop in LR_DROPS_100_EPOCHS],
            num_updates=max_iter,
        ),
        warmup_length=warmup_iters / max_iter,
        warmup_factor=0.001,
    )
