"""The demo's ViTDet Mask R-CNN shrunk until a step takes tens of milliseconds.

For the reliability tests (kill and resume, NaN guard, memory over 2,000
iterations, multi-process runs): the same parts as ``vitdet_tiny.py`` (ViT with
window + global blocks and rel-pos, simple feature pyramid, RPN, box and mask
heads), far too small to learn much.

| part      | vitdet_tiny              | this config              |
|-----------|--------------------------|--------------------------|
| input     | 128 px                   | 64 px                    |
| ViT       | patch 8, 128 x 4, win 8  | patch 8, 32 x 2, win 4   |
| pyramid   | P2-P4, 64 ch             | P2-P4, 16 ch             |
| RoIs      | 64 / image, 2fc (256)    | 16 / image, 1fc (32)     |
| mask head | 1conv, 64 ch             | 1conv, 8 ch              |
| batch     | 8                        | 2                        |
"""
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T
from detectron2.layers import ShapeSpec

from .vitdet_tiny import IMAGE_SIZE_REF, dataloader, lr_multiplier, model, optimizer, test, train

PYRAMID_CHANNELS = 16

# The ViT's img_size, the square padding and the anchors ([[8, 12], [16, 24], [32, 48]])
# follow from vitdet_tiny's, which read the image side.
dataloader.image_size = 64
net = model.backbone.net
net.embed_dim, net.depth, net.num_heads = 32, 2, 2
net.window_size = 4
net.window_block_indexes = [0]
net.residual_block_indexes = []
model.backbone.out_channels = PYRAMID_CHANNELS

model.proposal_generator.head.in_channels = PYRAMID_CHANNELS
model.proposal_generator.pre_nms_topk = (100, 100)
model.proposal_generator.post_nms_topk = (32, 32)
model.proposal_generator.batch_size_per_image = 64
model.roi_heads.batch_size_per_image = 16
model.roi_heads.box_head.input_shape = ShapeSpec(channels=PYRAMID_CHANNELS, height=7, width=7)
model.roi_heads.box_head.fc_dims = [32]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=32)
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=PYRAMID_CHANNELS, width=14, height=14)
model.roi_heads.mask_head.conv_dims = [8]

dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.8, max_scale=1.25, target_height=IMAGE_SIZE_REF, target_width=IMAGE_SIZE_REF),
    L(T.FixedSizeCrop)(crop_size=(IMAGE_SIZE_REF, IMAGE_SIZE_REF), pad=False),
]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0

train.max_iter = 200
train.eval_period = 0
train.checkpointer.period = 100
train.output_dir = "output/vitdet_micro"
