"""ConvNeXt-B Cascade Mask R-CNN, 3x, from ImageNet-22K (official
``cascade_mask_rcnn_convnext_base_..._3x_coco_in22k``): the ImageNet-1K recipe with
lr 1e-4 and drop path 0.6.

Published: 54.0 box AP, 46.9 mask AP, 146M parameters.
"""
from ...common.test import test
from .cascade_mask_rcnn_convnext_b_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.drop_path_rate = 0.6
train.init_checkpoint = "https://dl.fbaipublicfiles.com/convnext/convnext_base_22k_224.pth"
optimizer.lr = 1e-4
