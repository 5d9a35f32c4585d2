"""ViTDet, ViT-L Cascade Mask R-CNN on LVIS v1, 100 epochs: the LVIS ViT-L recipe
with the three cascade box heads, each with the LVIS classifier.

Published: 49.2 box AP, 44.5 mask AP.
"""
from ...common.test import test
from .cascade_mask_rcnn_vitdet_b_100ep import model
from .mask_rcnn_vitdet_l_100ep import dataloader, lr_multiplier, optimizer, train
from .mask_rcnn_vitdet_l_100ep import model as _mask_rcnn

model.backbone = _mask_rcnn.backbone
