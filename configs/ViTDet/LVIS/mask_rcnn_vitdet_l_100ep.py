"""ViTDet, ViT-L Mask R-CNN on LVIS v1, 100 epochs: the LVIS ViT-B recipe with the
COCO ViT-L backbone (drop path 0.4, layer-wise lr decay 0.8, MAE ViT-L).

Published: 46.1 box AP, 43.6 mask AP.
"""
from ...common.test import test
from ..COCO.mask_rcnn_vitdet_l_100ep import model as _vit_l
from ..COCO.mask_rcnn_vitdet_l_100ep import optimizer as _vit_l_optimizer
from ..COCO.mask_rcnn_vitdet_l_100ep import train as _vit_l_train
from .mask_rcnn_vitdet_b_100ep import dataloader, lr_multiplier, model, optimizer, train

model.backbone = _vit_l.backbone
train.init_checkpoint = _vit_l_train.init_checkpoint
optimizer.params.lr_factor_func = _vit_l_optimizer.params.lr_factor_func
