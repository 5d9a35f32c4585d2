"""ViTDet, ViT-B Cascade Mask R-CNN, 100 epochs: the Mask R-CNN recipe with cascade box heads."""
from ...common.models.cascade_mask_rcnn_vitdet import model
from ...common.test import test
from .mask_rcnn_vitdet_b_100ep import dataloader, lr_multiplier, optimizer, train
