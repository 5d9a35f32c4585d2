"""Swin-B Cascade Mask R-CNN on LVIS v1, 50 epochs, from ImageNet-21K: the COCO
ViTDet-project Swin-B recipe with the LVIS recipe of ``configs/common/data/lvis.py``,
drop path 0.3 and lr 1e-4 (detectron2 ``projects/ViTDet/configs/LVIS``).

Published: 44.0 box AP, 39.6 mask AP (detectron2 ViTDet model zoo).
"""
from ...common.data.lvis import lvis_iters, lvis_step_lr_multiplier, use_lvis, use_lvis_heads
from ...common.test import test
from ..COCO.cascade_mask_rcnn_swin_b_in21k_50ep import dataloader, model, optimizer, train

dataloader = use_lvis(dataloader)
use_lvis_heads(model.roi_heads)
model.backbone.bottom_up.drop_path_rate = 0.3

train.max_iter = lvis_iters(epochs=50)
train.eval_period = 30000
lr_multiplier = lvis_step_lr_multiplier(epochs=50)

optimizer.lr = 1e-4
