"""Swin-T Cascade Mask R-CNN, 3x, from ImageNet-1K: the Mask R-CNN recipe with the
cascade heads (official ``cascade_mask_rcnn_swin_tiny_..._giou_4conv1f_adamw_3x_coco``).

Published: 50.4 box AP, 43.7 mask AP, 86M parameters.
"""
from detectron2.config import LazyCall as L

from d2backbones.swin import SwinTransformer

from ...common.models.cascade_mask_rcnn_fpn_hierarchical import model
from ...common.test import test
from .mask_rcnn_swin_t_3x import dataloader, lr_multiplier, optimizer, train

model.backbone.bottom_up = L(SwinTransformer)(
    embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.2
)
