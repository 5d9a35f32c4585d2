"""Swin-L Cascade Mask R-CNN on LVIS v1, 50 epochs, from ImageNet-21K: the LVIS
Swin-B recipe with Swin-L (embed 192, heads 6-48), as detectron2's
``projects/ViTDet/configs/LVIS``.

Published: 46.0 box AP, 41.4 mask AP (detectron2 ViTDet model zoo).
"""
from ...common.test import test
from .cascade_mask_rcnn_swin_b_in21k_50ep import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.embed_dim = 192
model.backbone.bottom_up.num_heads = (6, 12, 24, 48)
train.init_checkpoint = "detectron2://ImageNetPretrained/swin/swin_large_patch4_window7_224_22k.pth"
