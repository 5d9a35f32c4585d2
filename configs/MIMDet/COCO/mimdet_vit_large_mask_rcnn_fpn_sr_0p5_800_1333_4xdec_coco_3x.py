"""MIMDet, ViT-L Mask R-CNN + FPN, COCO 3x, from the full MAE ViT-L (encoder + decoder).

The ViT-B recipe with a ViT-L encoder (1024 wide, 24 blocks, 16 heads, drop path 0.4),
ConvStem widths 128-1024, and encoder lr multiplier 3.5. Reference: 54.3 box /
48.2 mask AP, 349.33M params.
"""
from functools import partial

from d2backbones.mimdet import mimdet_lr_factor

from ...common.test import test
from .mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

encoder = model.backbone.bottom_up.encoder
encoder.embed_dim = 1024
encoder.depth = 24
encoder.num_heads = 16
encoder.drop_path_rate = 0.4

optimizer.params.lr_factor_func = partial(mimdet_lr_factor, encoder_lr_multiplier=3.5)

train.init_checkpoint = "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_large_full.pth"
train.output_dir = "output/mimdet_vit_large_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x"
