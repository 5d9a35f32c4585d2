"""ViTDet, ViT-H Cascade Mask R-CNN, 75 epochs: the ViT-H recipe with cascade box heads."""
from ...common.test import test
from .cascade_mask_rcnn_vitdet_b_100ep import model
from .mask_rcnn_vitdet_h_75ep import dataloader, lr_multiplier, optimizer, train
from .mask_rcnn_vitdet_h_75ep import model as _vit_h

model.backbone = _vit_h.backbone
