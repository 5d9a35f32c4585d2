"""ViTDet, ViT-B Cascade Mask R-CNN on LVIS v1, 100 epochs: the LVIS Mask R-CNN
recipe with the three cascade box heads, each with the LVIS classifier.

Published: 43.0 box AP, 38.9 mask AP.
"""
from ...common.data.lvis import use_lvis_heads
from ...common.models.cascade_mask_rcnn_vitdet import model
from ...common.test import test
from .mask_rcnn_vitdet_b_100ep import dataloader, lr_multiplier, optimizer, train
from .mask_rcnn_vitdet_b_100ep import model as _mask_rcnn

model.backbone = _mask_rcnn.backbone
use_lvis_heads(model.roi_heads)
