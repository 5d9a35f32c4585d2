"""ConvNeXt-T Cascade Mask R-CNN, 3x, from ImageNet-1K: the Mask R-CNN recipe with the
cascade heads, lr 2e-4 and layer-wise decay 0.7 (official
``cascade_mask_rcnn_convnext_tiny_..._giou_4conv1f_adamw_3x_coco_in1k``).

Published: 50.4 box AP, 43.7 mask AP, 86M parameters.
"""
from functools import partial

from detectron2.config import LazyCall as L

from d2backbones.convnext import ConvNeXt, convnext_lr_decay_rate

from ...common.models.cascade_mask_rcnn_fpn_hierarchical import model
from ...common.test import test
from .mask_rcnn_convnext_t_3x import dataloader, lr_multiplier, optimizer, train

model.backbone.bottom_up = L(ConvNeXt)(
    depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), drop_path_rate=0.4, layer_scale_init_value=1.0
)

optimizer.lr = 2e-4
optimizer.params.lr_factor_func = partial(convnext_lr_decay_rate, num_layers=6, lr_decay_rate=0.7)
