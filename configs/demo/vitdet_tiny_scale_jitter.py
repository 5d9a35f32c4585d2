"""The demo ViTDet trained with scale jitter, as a model that test-time scales can help.

``configs/demo/vitdet_tiny.py`` trains at one scale (flip only: in its 10 minutes scale
jitter cost more than it gave), so copies at other scales show it objects at sizes it
never saw, and test-time augmentation over scales lowers its AP. This variant trains
on the range that ``test.aug.min_sizes`` then covers:

| part            | vitdet_tiny               | this config                                  |
|-----------------|---------------------------|----------------------------------------------|
| image square    | 128 (pos-embed 16x16)     | 160 (pos-embed 20x20), anchors x 1.25        |
| train resize    | fit in the square         | short side one of 0.6-1.0 x the square (96-160 px, step 16), flip |
| test resize     | fit in the square         | the same (the 128-px images to 160)          |
| ``test.aug``    | off, no scales            | off; ``min_sizes=[96, 128, 160]``, flip      |

Everything else is the demo's. Evaluate with test-time augmentation by adding
``--eval-only train.init_checkpoint=W test.aug.enabled=True``.
"""
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T

from d2backbones.engine.config import scale_to_image_size

from .vitdet_tiny import IMAGE_SIZE_REF, dataloader, lr_multiplier, model, optimizer, test, train

IMAGE_SIZE = 160
TRAIN_SHORT_SIDES = [96, 112, 128, 144, 160]

dataloader.image_size = IMAGE_SIZE
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeShortestEdge)(
        short_edge_length=L(scale_to_image_size)(
            values=TRAIN_SHORT_SIDES, image_size=IMAGE_SIZE_REF, reference_size=IMAGE_SIZE
        ),
        max_size=IMAGE_SIZE_REF,
        sample_style="choice",
    ),
]
test.aug.min_sizes = [96, 128, 160]
test.aug.flip = True
train.output_dir = "output/demo_scale_jitter"
