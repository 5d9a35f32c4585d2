"""Tiny ViTDet Mask R-CNN trained from scratch on the embedded synthetic shapes.

What ``make demo`` runs: about 10 minutes on 2 CPU cores, no download. Same
architecture as the ViTDet configs (plain ViT with window + global blocks and
rel-pos, simple feature pyramid with LN, 2-conv RPN), shrunk to 128 px inputs:

| part          | ViTDet-B (COCO)            | this demo                         |
|---------------|----------------------------|-----------------------------------|
| input         | LSJ 1024, scale 0.1-2.0    | fit in 128 px, flip only          |
| ViT           | patch 16, 768 x 12, win 14 | patch 8, 128 x 4, win 8           |
| global blocks | 2, 5, 8, 11                | 1, 3 (+ conv residual blocks)     |
| pyramid       | P2-P6, 256 ch              | P2-P4 (stride 4-16), 64 ch        |
| box head      | 4conv1fc, 512 RoIs/img     | 2fc (256), 64 RoIs/img, 50% fg    |
| mask head     | 4conv, 256 ch              | 1conv, 64 ch                      |
| optimiser     | AdamW 1e-4, step, 100 ep   | AdamW 1e-3, cosine, 500 iters     |

Images of any size are resized to fit in a ``dataloader.image_size`` square (the
embedded 128 px images are left as they are), and that one key sets every size
that follows from it: the mapper's resize, the ViT's ``img_size`` and
``pos_embed`` grid, the square padding and the anchor sizes, e.g.
``dataloader.image_size=320``. It must be a multiple of 16, the coarsest stride.
"""
from functools import partial

import torch.nn as nn
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper, build_detection_test_loader, build_detection_train_loader, get_detection_dataset_dicts
from detectron2.data import transforms as T
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import FastRCNNConvFCHead, MaskRCNNConvUpsampleHead
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler

from d2backbones.data import SYNTHETIC_CLASSES
from d2backbones.engine.config import scale_to_image_size
from d2backbones.evaluation import COCOEvaluator
from d2backbones.modeling import ChunkedStandardROIHeads
from d2backbones.vitdet import SimpleFeaturePyramid, ViT

from ..common.optim import AdamW as optimizer
from ..common.test import test
from ..common.train import train

IMAGE_SIZE = 128
# Every size below that follows the image side reads it from here.
IMAGE_SIZE_REF = "${dataloader.image_size}"
PYRAMID_CHANNELS = 64
DEPTH = 4

# ---- model --------------------------------------------------------------
model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"
model.backbone = L(SimpleFeaturePyramid)(
    net=L(ViT)(
        img_size=IMAGE_SIZE_REF,
        patch_size=8,
        embed_dim=128,
        depth=DEPTH,
        num_heads=4,
        drop_path_rate=0.0,
        window_size=8,
        mlp_ratio=4,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        window_block_indexes=[0, 2],
        # ViTDet's conv "residual" blocks: locality that a ViT trained from scratch
        # for minutes has not learned yet (measured: +1 AP at 250 iterations).
        residual_block_indexes=[1, 3],
        use_rel_pos=True,
        # Trained from scratch: pos_embed is stored at the input's own grid.
        pretrain_img_size="${.img_size}",
        pretrain_use_cls_token=False,
        out_feature="last_feat",
    ),
    in_feature="${.net.out_feature}",
    out_channels=PYRAMID_CHANNELS,
    scale_factors=(2.0, 1.0, 0.5),
    top_block=None,
    norm="LN",
    # Zeros after normalization up to the square that sized the rel-pos tables (img_size).
    square_pad=IMAGE_SIZE_REF,
)
levels = ["p2", "p3", "p4"]
pooler_scales = (1 / 4, 1 / 8, 1 / 16)
model.proposal_generator.in_features = levels
model.proposal_generator.head.in_channels = PYRAMID_CHANNELS
model.proposal_generator.head.conv_dims = [-1, -1]
# Objects span 13-77 px at 128 px, so two anchor sizes per level cover them with three
# levels; at another image side they keep their share of the image.
model.proposal_generator.anchor_generator.sizes = L(scale_to_image_size)(
    values=[[16, 24], [32, 48], [64, 96]], image_size=IMAGE_SIZE_REF, reference_size=IMAGE_SIZE
)
model.proposal_generator.anchor_generator.strides = [4, 8, 16]
model.proposal_generator.head.num_anchors = 6  # 2 sizes x 3 aspect ratios
model.proposal_generator.pre_nms_topk = (600, 500)
model.proposal_generator.post_nms_topk = (300, 300)
# detectron2's StandardROIHeads, evaluated over chunks of RoIs on the CPU (same detections, faster).
model.roi_heads._target_ = ChunkedStandardROIHeads
model.roi_heads.num_classes = len(SYNTHETIC_CLASSES)
model.roi_heads.batch_size_per_image = 64
# Half the RoIs foreground (COCO recipes: a quarter), so the classifier sees shapes sooner.
model.roi_heads.positive_fraction = 0.5
model.roi_heads.box_in_features = levels
model.roi_heads.box_pooler.scales = pooler_scales
# One bilinear sample per bin: torchvision's CPU ROIAlign backward is the costliest op here.
model.roi_heads.box_pooler.sampling_ratio = 1
model.roi_heads.box_head = L(FastRCNNConvFCHead)(
    input_shape=ShapeSpec(channels=PYRAMID_CHANNELS, height=7, width=7), conv_dims=[], fc_dims=[256, 256]
)
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=256)
model.roi_heads.mask_in_features = levels
model.roi_heads.mask_pooler.scales = pooler_scales
model.roi_heads.mask_pooler.sampling_ratio = 1
model.roi_heads.mask_head = L(MaskRCNNConvUpsampleHead)(
    input_shape=ShapeSpec(channels=PYRAMID_CHANNELS, width=14, height=14),
    num_classes="${..num_classes}",
    conv_dims=[64],
)

# ---- data ---------------------------------------------------------------
def fit_in_square():
    """The resize of train and test: the long side to at most image_size, the short one
    in proportion. A square image_size image (the embedded ones) keeps its pixels, and
    no random number is drawn, so the flips are those of a flip-only pipeline."""
    return L(T.ResizeShortestEdge)(short_edge_length=IMAGE_SIZE_REF, max_size=IMAGE_SIZE_REF)


dataloader = dict(
    image_size=IMAGE_SIZE,
    # The coarsest pyramid stride (16): a square of whole stride-16 cells, padded no further.
    image_size_multiple=16,
    train=L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names="synthetic_shapes_train"),
        mapper=L(DatasetMapper)(
            is_train=True,
            # Flip only: in a 10-minute run scale jitter cost more than it gave
            # (measured: -1 box AP at 250 iterations).
            augmentations=[L(T.RandomFlip)(horizontal=True), fit_in_square()],
            image_format="RGB",
            use_instance_mask=True,
            # The synthetic masks mix polygons and RLE (occlusion splits some objects).
            instance_mask_format="bitmask",
        ),
        total_batch_size=8,
        num_workers=1,
    ),
    test=L(build_detection_test_loader)(
        dataset=L(get_detection_dataset_dicts)(names="synthetic_shapes_val", filter_empty=False),
        mapper=L(DatasetMapper)(is_train=False, augmentations=[fit_in_square()], image_format="RGB"),
        batch_size=8,
        num_workers=1,
    ),
    evaluator=L(COCOEvaluator)(dataset_name="${..test.dataset.names}"),
)

# ---- schedule -----------------------------------------------------------
train.max_iter = 500
train.eval_period = 250
train.checkpointer.period = 250
train.log_period = 20
train.seed = 42
train.device = "cpu"
train.output_dir = "output/demo"

optimizer.lr = 1e-3
optimizer.weight_decay = 0.05
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.02),
    warmup_length=50 / train.max_iter,
    warmup_factor=0.01,
)
