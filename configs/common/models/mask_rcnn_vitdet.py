"""ViTDet Mask R-CNN (Li et al., ECCV 2022) with a ViT-B backbone: a plain ViT,
a simple feature pyramid on its last map, and detectron2's FPN Mask R-CNN heads
with the paper's changes (LN in the heads, 2-conv RPN, 4conv1fc box head).
Larger ViTs change ``model.backbone.net`` only.
"""
from functools import partial

import torch.nn as nn
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from d2backbones.layers import LayerNorm2d
from d2backbones.vitdet import SimpleFeaturePyramid, ViT


def windowed_blocks(depth, global_blocks):
    """Indexes of the window-attention blocks of a ViT whose other blocks are global."""
    return [i for i in range(depth) if i not in global_blocks]


constants = model_zoo.get_config("common/data/constants.py").constants
# The data config's image side (1024 for LSJ), or 1024 when this file is loaded alone.
IMAGE_SIZE_REF = "${oc.select:dataloader.image_size,1024}"

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
# MAE pretraining normalized RGB inputs with ImageNet statistics.
model.pixel_mean = constants.imagenet_rgb256_mean
model.pixel_std = constants.imagenet_rgb256_std
model.input_format = "RGB"

model.backbone = L(SimpleFeaturePyramid)(
    net=L(ViT)(
        img_size=IMAGE_SIZE_REF,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        drop_path_rate=0.1,
        mlp_ratio=4,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        window_size=14,
        # Four evenly spaced global blocks propagate information across windows.
        window_block_indexes=windowed_blocks(12, global_blocks=(2, 5, 8, 11)),
        residual_block_indexes=[],
        use_rel_pos=True,
        out_feature="last_feat",
    ),
    in_feature="${.net.out_feature}",
    out_channels=256,
    scale_factors=(4.0, 2.0, 1.0, 0.5),
    top_block=L(LastLevelMaxPool)(),
    norm="LN",
    # Every image, train or test, becomes the image_size square that sized the
    # global blocks' rel-pos tables (img_size), so they are never interpolated.
    square_pad=IMAGE_SIZE_REF,
)

# The paper's heads: LN in the box and mask head convs, 2 convs in the RPN head,
# and a 4conv1fc box head. The LN is LayerNorm2d: detectron2's "LN" maths and keys in
# one fused kernel, whose backward keeps one tensor where detectron2's four separate
# reductions keep several; the box head over 512 RoIs an image then keeps about half
# the memory for backward (BENCHMARKS.md, "Whole ViTDet-B detectors").
model.roi_heads.box_head.conv_norm = model.roi_heads.mask_head.conv_norm = LayerNorm2d
model.proposal_generator.head.conv_dims = [-1, -1]
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]
