"""ConvNeXt-B Cascade Mask R-CNN on LVIS v1, 36 epochs, from ImageNet-1K.

No LVIS result was published for ConvNeXt: this is the COCO 3x recipe
(multi-scale + crop, batch 16, lr 2e-4, layer-wise decay 0.8, drop path 0.7)
moved to LVIS with the LVIS recipe of ``configs/common/data/lvis.py``
(repeat-factor sampling 0.001, sigmoid + federated loss, 300 detections per
image, LVISEvaluator), for the same number of epochs of LVIS (100k images).
"""
from ...common.data.lvis import lvis_iters, lvis_step_lr_multiplier, use_lvis, use_lvis_heads
from ...common.test import test
from ..COCO.cascade_mask_rcnn_convnext_b_3x import dataloader, model, optimizer, train

BATCH_SIZE = 16

dataloader = use_lvis(dataloader)
use_lvis_heads(model.roi_heads)

train.max_iter = lvis_iters(epochs=36, batch_size=BATCH_SIZE)
lr_multiplier = lvis_step_lr_multiplier(epochs=36, drop_epochs=(27, 33), batch_size=BATCH_SIZE, warmup_iters=500)
