"""ConvNeXt-B Mask R-CNN, 3x, from ImageNet-1K.

The official release has no ConvNeXt-B Mask R-CNN; this is its ConvNeXt-T Mask R-CNN
recipe (lr 1e-4, layer-wise decay 0.95) with ConvNeXt-B's drop path (0.7, from its
Cascade config) and the 12 layer ids of the 27-block stage 3. No published result.
"""
from functools import partial

from d2backbones.convnext import convnext_lr_decay_rate

from ...common.test import test
from .mask_rcnn_convnext_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.depths = (3, 3, 27, 3)
model.backbone.bottom_up.dims = (128, 256, 512, 1024)
model.backbone.bottom_up.drop_path_rate = 0.7
train.init_checkpoint = "https://dl.fbaipublicfiles.com/convnext/convnext_base_1k_224.pth"
optimizer.params.lr_factor_func = partial(convnext_lr_decay_rate, num_layers=12, lr_decay_rate=0.95)
