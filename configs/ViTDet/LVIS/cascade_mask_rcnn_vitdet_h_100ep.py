"""ViTDet, ViT-H Cascade Mask R-CNN on LVIS v1, 100 epochs: the LVIS ViT-H recipe
with the three cascade box heads, each with the LVIS classifier.

Published: 51.5 box AP, 46.6 mask AP.
"""
from ...common.test import test
from .cascade_mask_rcnn_vitdet_b_100ep import model
from .mask_rcnn_vitdet_h_100ep import dataloader, lr_multiplier, optimizer, train
from .mask_rcnn_vitdet_h_100ep import model as _mask_rcnn

model.backbone = _mask_rcnn.backbone
