"""COCO with the multi-scale + crop recipe of the Swin, ConvNeXt and MIMDet detectors
(mmdet's "3x" AutoAugment pipeline, written with detectron2 augmentations):

- flip;
- with probability 0.5: resize the short side to 400/500/600 (max 1333), then crop
  a random 384-600 px window;
- resize the short side to one of 480, 512, ..., 800 (max 1333).

Test: short side 800, max 1333. Batch 16.
"""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from d2backbones.evaluation import COCOEvaluator

train_short_edges = tuple(range(480, 801, 32))
max_size = 1333

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.RandomApply)(
        tfm_or_aug=L(T.AugmentationList)(
            augs=[
                L(T.ResizeShortestEdge)(short_edge_length=(400, 500, 600), max_size=max_size, sample_style="choice"),
                L(T.RandomCrop)(crop_type="absolute_range", crop_size=(384, 600)),
            ]
        ),
        prob=0.5,
    ),
    L(T.ResizeShortestEdge)(short_edge_length=train_short_edges, max_size=max_size, sample_style="choice"),
]
dataloader.train.mapper.use_instance_mask = True
dataloader.train.mapper.instance_mask_format = "polygon"
# Boxes clipped by the crop would be loose; rebuild them from the cropped masks.
dataloader.train.mapper.recompute_boxes = True
dataloader.train.total_batch_size = 16

dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=800, max_size=max_size),
]

dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
