"""ConvNeXt-B Cascade Mask R-CNN, 3x, from ImageNet-1K (official
``cascade_mask_rcnn_convnext_base_..._3x_coco_in1k``): lr 2e-4, layer-wise decay 0.8
over 12 layer ids, drop path 0.7.

Published: 52.7 box AP, 45.6 mask AP, 146M parameters. The ImageNet-22K recipe is
``cascade_mask_rcnn_convnext_b_in22k_3x.py``.
"""
from functools import partial

from d2backbones.convnext import convnext_lr_decay_rate

from ...common.test import test
from .cascade_mask_rcnn_convnext_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.depths = (3, 3, 27, 3)
model.backbone.bottom_up.dims = (128, 256, 512, 1024)
model.backbone.bottom_up.drop_path_rate = 0.7
train.init_checkpoint = "https://dl.fbaipublicfiles.com/convnext/convnext_base_1k_224.pth"
optimizer.params.lr_factor_func = partial(convnext_lr_decay_rate, num_layers=12, lr_decay_rate=0.8)
