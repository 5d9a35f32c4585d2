"""Pieces of the masked-image-modeling pretraining configs (``configs/Pretrain/``):
schedules counted in epochs, the MAE optimiser, and the unlabeled-image loader.

Pretraining recipes are given in epochs of ImageNet-1K train (1,281,167 images) at
a total batch; an epoch is ``images // batch`` iterations (the last partial batch
dropped, as MAE's loader does), and the schedule is MAE's: linear warm-up from 0,
then a half-cycle cosine to 0, both per iteration.
"""
import torch
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_train_loader, get_detection_dataset_dicts
from detectron2.solver.build import get_default_optimizer_params
from fvcore.common.param_scheduler import CompositeParamScheduler, CosineParamScheduler, LinearParamScheduler

from d2backbones.data import MAEPretrainMapper

IMAGENET_1K_TRAIN_IMAGES = 1281167
# MAE's linear scaling rule: lr = base lr x total batch / 256.
LR_REFERENCE_BATCH = 256


def epoch_iters(epochs, batch_size, num_images=IMAGENET_1K_TRAIN_IMAGES):
    """Iterations of ``epochs`` passes over ``num_images`` at ``batch_size``, partial batches dropped."""
    return epochs * (num_images // batch_size)


def scaled_lr(base_lr, batch_size):
    """MAE's ``lr = blr * batch / 256``."""
    return base_lr * batch_size / LR_REFERENCE_BATCH


def warmup_cosine_lr_multiplier(warmup_fraction):
    """MAE's schedule: ``x / warmup`` during the warm-up, then ``0.5 * (1 + cos(pi * t))``
    over the rest, ``t`` going 0 -> 1; as a fraction of training, so any length fits."""
    return L(CompositeParamScheduler)(
        schedulers=[
            L(LinearParamScheduler)(start_value=0.0, end_value=1.0),
            L(CosineParamScheduler)(start_value=1.0, end_value=0.0),
        ],
        lengths=[warmup_fraction, 1.0 - warmup_fraction],
        interval_scaling=["rescaled", "rescaled"],
    )


# MAE's AdamW: betas (0.9, 0.95), wd 0.05, none on biases and norms (timm's
# add_weight_decay skips 1-D parameters); the fixed position embeddings take no gradient.
AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0, weight_decay_bias=0.0),
    lr=scaled_lr(1.5e-4, 4096),
    betas=(0.9, 0.95),
    weight_decay=0.05,
)


def unlabeled_train_loader(names, total_batch_size, num_workers):
    """The training loader over unlabeled images with MAE's augmentation, cropping to
    ``dataloader.image_size`` in the model's ``input_format``.

    It is detectron2's ``build_detection_train_loader`` with the arguments the engine
    rebuilds as its resumable, bad-image-skipping loader."""
    return L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names=names, filter_empty=False),
        mapper=L(MAEPretrainMapper)(
            image_size="${dataloader.image_size}",
            scale=(0.2, 1.0),
            horizontal_flip=True,
            image_format="${model.input_format}",
        ),
        total_batch_size=total_batch_size,
        num_workers=num_workers,
        # Every crop is a square: grouping by aspect ratio has nothing to do.
        aspect_ratio_grouping=False,
    )


def unlabeled_dataloader(names, total_batch_size, num_workers, image_size, image_size_multiple, scale=(0.2, 1.0)):
    """A pretraining config's ``dataloader``: :func:`unlabeled_train_loader` with the crop's
    ``scale`` range, ``image_size`` / ``image_size_multiple`` for the size checks, and no
    evaluation while pretraining."""
    train = unlabeled_train_loader(names, total_batch_size, num_workers)
    train.mapper.scale = scale
    return dict(image_size=image_size, image_size_multiple=image_size_multiple, train=train, evaluator=None)
