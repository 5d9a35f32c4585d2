"""ViTDet, ViT-B Mask R-CNN on LVIS v1, 100 epochs, from MAE ViT-B.

The COCO ViT-B recipe with the LVIS recipe of ``configs/common/data/lvis.py``
(repeat-factor sampling 0.001, sigmoid + federated loss, 300 detections per image,
LVISEvaluator) and lr 2e-4, as in detectron2's ``projects/ViTDet/configs/LVIS``.

Published: 40.2 box AP, 38.2 mask AP.
"""
from ...common.data.lvis import lvis_iters, lvis_step_lr_multiplier, use_lvis_heads
from ...common.data.lvis_lsj import dataloader
from ...common.test import test
from ..COCO.mask_rcnn_vitdet_b_100ep import model, optimizer, train

use_lvis_heads(model.roi_heads)

train.max_iter = lvis_iters(epochs=100)
train.eval_period = 30000
lr_multiplier = lvis_step_lr_multiplier(epochs=100)

optimizer.lr = 2e-4
