"""ViTDet, ViT-B Mask R-CNN, 100 epochs of COCO with LSJ, from MAE ViT-B.

Recipe of the ViTDet paper: AdamW lr 1e-4, wd 0.1, layer-wise lr decay 0.7,
drop path 0.1, batch 64, 250 warmup iterations, mixed precision.
"""
from functools import partial

from d2backbones.vitdet import vit_lr_decay_rate

from ...common.data.coco_lsj import dataloader
from ...common.models.mask_rcnn_vitdet import model
from ...common.optim import AdamW as optimizer
from ...common.schedule import coco_iters, step_lr_multiplier
from ...common.test import test
from ...common.train import train

train.amp.enabled = True
train.ddp.fp16_compression = True
# ?matching_heuristics=True is for detectron2's own lazyconfig_train_net.py, whose
# checkpointer needs it to map the MAE keys ("blocks.0...") to "backbone.net.blocks.0...".
# This project's loader detects the MAE format by itself and converts it explicitly.
train.init_checkpoint = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth?matching_heuristics=True"

train.max_iter = coco_iters(epochs=100)
lr_multiplier = step_lr_multiplier(epochs=100)

optimizer.params.lr_factor_func = partial(vit_lr_decay_rate, num_layers=12, lr_decay_rate=0.7)
optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}
