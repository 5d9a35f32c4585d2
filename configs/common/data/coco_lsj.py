"""COCO with large-scale jitter (LSJ), the data recipe of ViTDet: 1024 px crops of
images rescaled by 0.1-2.0, batch 64.

The crop side is ``dataloader.image_size``: the test resize and the model's square
padding (and a ViT's ``img_size``) read it too, so ``dataloader.image_size=768``
changes all of them. It must be a multiple of 32, the coarsest stride of the
pyramids these configs build (ViTDet's and Swin's).

Polygon masks go through the crop, which needs ``shapely`` at training time.
"""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from d2backbones.evaluation import COCOEvaluator

IMAGE_SIZE = 1024
IMAGE_SIZE_REF = "${dataloader.image_size}"

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.image_size = IMAGE_SIZE
dataloader.image_size_multiple = 32
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=IMAGE_SIZE_REF, target_width=IMAGE_SIZE_REF),
    # No padding here: the model pads every image to an image_size square after
    # normalizing (square_pad), so pad pixels are zeros, as in ViTDet.
    L(T.FixedSizeCrop)(crop_size=(IMAGE_SIZE_REF, IMAGE_SIZE_REF), pad=False),
]
# MAE checkpoints were pretrained on RGB.
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.use_instance_mask = True
dataloader.train.mapper.instance_mask_format = "polygon"
# Boxes clipped by the crop would be loose; rebuild them from the cropped masks.
dataloader.train.mapper.recompute_boxes = True
dataloader.train.total_batch_size = 64

dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=IMAGE_SIZE_REF, max_size=IMAGE_SIZE_REF),
]

dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
