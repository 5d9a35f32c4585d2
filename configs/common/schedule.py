"""Step lr schedules on COCO, as functions of epochs.

ViTDet's: at batch 64, 100 epochs of COCO train2017 (118k images) are 184375
iterations, and the lr drops 10x at iterations 163889 and 177546 (~88.9 and ~96.3
epochs). Other lengths scale these by ``epochs / 100`` with floor division, which is
how detectron2 derives its ViTDet-H 75-epoch schedule (138281 iterations, drops at
122916 and 133159), so ours match it to the iteration. The other families' "3x"
recipes drop the lr at fixed epochs (:func:`coco_step_schedule`). Every step schedule
of the configs is built by :func:`warmup_step_lr_multiplier`.
"""
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

ITERS_100_EPOCHS = 184375
LR_DROPS_100_EPOCHS = (163889, 177546)
WARMUP_ITERS = 250


def coco_iters(epochs, batch_size=64):
    """Training iterations of ``epochs`` COCO epochs at ``batch_size``.

    Counted at batch 64 first (floor), then scaled, so that a smaller batch's
    milestones stay at the batch-64 ones times ``64 // batch_size``."""
    return ITERS_100_EPOCHS * epochs // 100 * 64 // batch_size


def warmup_step_lr_multiplier(max_iter, milestones, warmup_iters, warmup_factor=0.001):
    """Linear warmup from ``warmup_factor`` over ``warmup_iters`` iterations, then the lr
    at 1x, 0.1x from ``milestones[0]`` and 0.01x from ``milestones[1]``, up to ``max_iter``."""
    if len(milestones) != 2 or not 0 < milestones[0] < milestones[1] < max_iter:
        raise ValueError(f"need two increasing milestones between 0 and max_iter={max_iter}; got {list(milestones)}")
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[1.0, 0.1, 0.01],
            milestones=list(milestones),
            num_updates=max_iter,
        ),
        warmup_length=warmup_iters / max_iter,
        warmup_factor=warmup_factor,
    )


def step_lr_multiplier(epochs, warmup_iters=WARMUP_ITERS):
    """ViTDet's: linear warmup from 0.001x, then 1x / 0.1x / 0.01x steps, over ``coco_iters(epochs)``."""
    milestones = [drop * epochs // 100 for drop in LR_DROPS_100_EPOCHS]
    return warmup_step_lr_multiplier(coco_iters(epochs), milestones, warmup_iters)


def coco_step_schedule(epochs, drop_epochs, batch_size=64, warmup_iters=WARMUP_ITERS, warmup_factor=0.001):
    """A step schedule counted in COCO epochs, such as the "3x" recipe of the ConvNeXt and
    Swin detection configs (36 epochs at batch 16, lr x0.1 at epochs 27 and 33, 500
    warmup iterations from 0.001x).

    Returns:
        (int, LazyCall): ``train.max_iter`` and ``lr_multiplier``, lr x0.1 at each of
        ``drop_epochs`` (two of them) and linear warmup over ``warmup_iters``.
    """
    max_iter = coco_iters(epochs, batch_size)
    milestones = [coco_iters(epoch, batch_size) for epoch in drop_epochs]
    return max_iter, warmup_step_lr_multiplier(max_iter, milestones, warmup_iters, warmup_factor)
