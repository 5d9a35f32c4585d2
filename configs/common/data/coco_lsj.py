"""COCO with large-scale jitter (LSJ), the data recipe of ViTDet: 1024 px crops of
images rescaled by 0.1-2.0, batch 64.

Polygon masks go through the crop, which needs ``shapely`` at training time.
"""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from d2backbones.evaluation import COCOEvaluator

image_size = 1024

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    # No padding here: the model pads every image to a 1024 square after normalizing
    # (SimpleFeaturePyramid's square_pad), so pad pixels are zeros, as in ViTDet.
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
# MAE checkpoints were pretrained on RGB.
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.use_instance_mask = True
dataloader.train.mapper.instance_mask_format = "polygon"
# Boxes clipped by the crop would be loose; rebuild them from the cropped masks.
dataloader.train.mapper.recompute_boxes = True
dataloader.train.total_batch_size = 64

dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size),
]

dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
