"""ViTDet, ViT-L Cascade Mask R-CNN, 100 epochs: the ViT-L recipe with cascade box heads."""
from ...common.test import test
from .cascade_mask_rcnn_vitdet_b_100ep import model
from .mask_rcnn_vitdet_l_100ep import dataloader, lr_multiplier, optimizer, train
from .mask_rcnn_vitdet_l_100ep import model as _vit_l

model.backbone = _vit_l.backbone
