"""ViTDet, ViT-H Mask R-CNN on LVIS v1, 100 epochs: the LVIS ViT-B recipe with the
COCO ViT-H backbone and optimizer settings (layer-wise lr decay 0.9, decay on every
parameter), but drop path 0.4 and lr 1e-4, as detectron2 publishes for LVIS.

Published: 49.1 box AP, 46.0 mask AP.
"""
from ...common.test import test
from ..COCO.mask_rcnn_vitdet_h_75ep import model as _vit_h
from ..COCO.mask_rcnn_vitdet_h_75ep import optimizer as _vit_h_optimizer
from ..COCO.mask_rcnn_vitdet_h_75ep import train as _vit_h_train
from .mask_rcnn_vitdet_b_100ep import dataloader, lr_multiplier, model, optimizer, train

model.backbone = _vit_h.backbone
model.backbone.net.drop_path_rate = 0.4
train.init_checkpoint = _vit_h_train.init_checkpoint

optimizer.lr = 1e-4
optimizer.params.lr_factor_func = _vit_h_optimizer.params.lr_factor_func
optimizer.params.overrides = _vit_h_optimizer.params.overrides
optimizer.params.weight_decay_norm = _vit_h_optimizer.params.weight_decay_norm
