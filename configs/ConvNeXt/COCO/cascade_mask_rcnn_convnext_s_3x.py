"""ConvNeXt-S Cascade Mask R-CNN, 3x, from ImageNet-1K (official
``cascade_mask_rcnn_convnext_small_..._3x_coco_in1k``): lr 2e-4, layer-wise decay 0.7
over 12 layer ids (27-block stage 3), drop path 0.6.

Published: 51.9 box AP, 45.0 mask AP, 108M parameters.
"""
from functools import partial

from d2backbones.convnext import convnext_lr_decay_rate

from ...common.test import test
from .cascade_mask_rcnn_convnext_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.depths = (3, 3, 27, 3)
model.backbone.bottom_up.drop_path_rate = 0.6
train.init_checkpoint = "https://dl.fbaipublicfiles.com/convnext/convnext_small_1k_224.pth"
optimizer.params.lr_factor_func = partial(convnext_lr_decay_rate, num_layers=12, lr_decay_rate=0.7)
