"""MIMDet, ViT-B Mask R-CNN + FPN on LVIS v1, 36 epochs, from the full MAE ViT-B.

No LVIS result was published for MIMDet: this is the COCO 3x recipe (sample ratio
0.5, multi-scale + crop, batch 64, lr 8e-5, warmup from 0 over a quarter epoch,
lr x0.1 at epochs 27 and 33) moved to LVIS with the LVIS recipe of
``configs/common/data/lvis.py`` (repeat-factor sampling 0.001, sigmoid + federated
loss, 300 detections per image, LVISEvaluator), for 36 epochs of LVIS (100k images).
"""
from ...common.data.lvis import lvis_iters, lvis_step_lr_multiplier, use_lvis, use_lvis_heads
from ...common.test import test
from ..COCO.mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x import (
    EPOCHS,
    dataloader,
    model,
    optimizer,
    train,
)

dataloader = use_lvis(dataloader)
use_lvis_heads(model.roi_heads)

train.max_iter = lvis_iters(epochs=EPOCHS)
train.checkpointer.period = train.eval_period = lvis_iters(epochs=1)
train.output_dir = "output/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_lvis_3x"
lr_multiplier = lvis_step_lr_multiplier(
    epochs=EPOCHS, drop_epochs=(27, 33), warmup_iters=lvis_iters(epochs=1) // 4, warmup_factor=0.0
)
