"""Swin-S Mask R-CNN, 3x, from ImageNet-1K (official
``mask_rcnn_swin_small_patch4_window7_mstrain_480-800_adamw_3x_coco``): the Swin-T
recipe with the 18-block stage 3, drop path 0.2.

Published: 48.5 box AP, 43.3 mask AP, 69M parameters.
"""
from ...common.test import test
from .mask_rcnn_swin_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.depths = (2, 2, 18, 2)
train.init_checkpoint = "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth"
