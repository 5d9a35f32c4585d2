"""Swin-B Cascade Mask R-CNN, 3x, from ImageNet-1K (official
``cascade_mask_rcnn_swin_base_..._3x_coco``): drop path 0.3.

Published: 51.9 box AP, 45.0 mask AP, 145M parameters.
"""
from ...common.test import test
from .cascade_mask_rcnn_swin_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.embed_dim = 128
model.backbone.bottom_up.depths = (2, 2, 18, 2)
model.backbone.bottom_up.num_heads = (4, 8, 16, 32)
model.backbone.bottom_up.drop_path_rate = 0.3
train.init_checkpoint = "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth"
