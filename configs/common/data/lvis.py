"""The LVIS v1 recipe shared by every family's ``configs/<Family>/LVIS`` configs, as
published with ViTDet (detectron2 ``projects/ViTDet/configs/LVIS``):

| item           | LVIS v1                                                              |
|----------------|----------------------------------------------------------------------|
| data           | ``lvis_v1_train`` / ``lvis_v1_val``, 1203 classes                    |
| sampling       | repeat-factor sampling, threshold 0.001                              |
| classification | sigmoid cross-entropy with federated loss (class weights: image count ** 0.5) |
| test           | score threshold 0.02, 300 detections per image, ``LVISEvaluator``    |
| schedule       | 100 epochs = 156,250 iterations at batch 64 (100k images per epoch), |
|                | lr x0.1 at ~88.9 and ~96.3 epochs, 250 warmup iterations             |
"""
from functools import partial

from detectron2.config import LazyCall as L
from detectron2.data.detection_utils import get_fed_loss_cls_weights
from detectron2.data.samplers import RepeatFactorTrainingSampler
from d2backbones.evaluation.lvis import LVISEvaluator

from ..schedule import warmup_step_lr_multiplier

NUM_CLASSES = 1203
REPEAT_THRESH = 0.001
FED_LOSS_FREQ_WEIGHT_POWER = 0.5
TEST_SCORE_THRESH = 0.02
DETECTIONS_PER_IMAGE = 300
ITERS_100_EPOCHS = 156250
LR_DROPS_100_EPOCHS = (138889, 150463)
WARMUP_ITERS = 250


def use_lvis(dataloader):
    """Point a COCO ``dataloader`` config at LVIS v1 with repeat-factor sampling and LVIS AP."""
    dataloader.train.dataset.names = "lvis_v1_train"
    dataloader.train.sampler = L(RepeatFactorTrainingSampler)(
        repeat_factors=L(RepeatFactorTrainingSampler.repeat_factors_from_category_frequency)(
            dataset_dicts="${dataloader.train.dataset}", repeat_thresh=REPEAT_THRESH
        )
    )
    dataloader.test.dataset.names = "lvis_v1_val"
    dataloader.evaluator = L(LVISEvaluator)(
        dataset_name="${..test.dataset.names}", max_dets_per_image=DETECTIONS_PER_IMAGE
    )
    return dataloader


def fed_loss_class_weights(dataset_names, freq_weight_power):
    """The zero-argument callable ``FastRCNNOutputLayers`` takes: per-class weights from
    the training set's ``class_image_count`` metadata (registered for LVIS by detectron2)."""
    return partial(get_fed_loss_cls_weights, dataset_names, freq_weight_power)


def use_lvis_box_predictor(box_predictor):
    """Sigmoid classification with federated loss and LVIS test settings, on one
    ``FastRCNNOutputLayers`` config (a cascade has one per stage)."""
    box_predictor.update(
        test_score_thresh=TEST_SCORE_THRESH,
        test_topk_per_image=DETECTIONS_PER_IMAGE,
        use_sigmoid_ce=True,
        use_fed_loss=True,
        # Read when the model is built, so an overridden training set is followed.
        get_fed_loss_cls_weights=L(fed_loss_class_weights)(
            dataset_names="${dataloader.train.dataset.names}", freq_weight_power=FED_LOSS_FREQ_WEIGHT_POWER
        ),
    )


def use_lvis_heads(roi_heads):
    """1203 classes and :func:`use_lvis_box_predictor` on every box predictor."""
    roi_heads.num_classes = NUM_CLASSES
    predictors = roi_heads.box_predictors if "box_predictors" in roi_heads else [roi_heads.box_predictor]
    for predictor in predictors:
        use_lvis_box_predictor(predictor)


def lvis_iters(epochs, batch_size=64):
    """Iterations of ``epochs`` LVIS v1 epochs (100k images each) at ``batch_size``."""
    return ITERS_100_EPOCHS * epochs // 100 * 64 // batch_size


def lvis_step_lr_multiplier(epochs, drop_epochs=None, batch_size=64, warmup_iters=WARMUP_ITERS, warmup_factor=0.001):
    """Linear warmup from ``warmup_factor``, then 1x / 0.1x / 0.01x steps, over ``epochs``
    LVIS epochs at ``batch_size``.

    ``drop_epochs`` default to ViTDet's (~88.9% and ~96.3% of the schedule, to the
    iteration); the 3x recipes of the other families pass ``(27, 33)``.
    """
    iters_per_epoch = ITERS_100_EPOCHS * 64 // batch_size / 100
    max_iter = int(iters_per_epoch * epochs)
    if drop_epochs is None:
        milestones = [int(drop * epochs // 100 * 64 // batch_size) for drop in LR_DROPS_100_EPOCHS]
    else:
        milestones = [int(iters_per_epoch * epoch) for epoch in drop_epochs]
    return warmup_step_lr_multiplier(max_iter, milestones, warmup_iters, warmup_factor)
