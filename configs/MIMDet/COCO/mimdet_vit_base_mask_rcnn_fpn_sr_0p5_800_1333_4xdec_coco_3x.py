"""MIMDet, ViT-B Mask R-CNN + FPN, COCO 3x, from the full MAE ViT-B (encoder + decoder).

Recipe of the reference (hustvl/MIMDet, 51.7 box / 46.2 mask AP, 127.96M params):

| item            | setting                                                      |
|-----------------|--------------------------------------------------------------|
| backbone        | ConvStem + MAE ViT-B encoder + 4 MAE decoder blocks (512)    |
| token sampling  | 0.5 of the stride-16 tokens in training, all (1.0) at test   |
| neck / heads    | FPN P2-P6 with SyncBN, 2-conv RPN, 4conv1fc box head and mask head with SyncBN |
| data            | flip, 480-800 short side (max 1333) with crop; test 800 x 1333 |
| optimiser       | AdamW lr 8e-5, wd 0.1 (none on norms and biases), batch 64   |
| lr by part      | encoder blocks lr / 2.0, ConvStem lr, decoder + FPN + heads lr * 2.0 |
| schedule        | 36 epochs = 67,500 iterations, lr x0.1 at epochs 27 and 33, warmup 1/4 epoch from 0 |

Sample ratios can be changed from the command line:
``model.backbone.bottom_up.sample_ratio=0.25`` (training) and
``model.backbone.bottom_up.test_sample_ratio=1.0`` (evaluation).
"""
from functools import partial

import torch.nn as nn
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from d2backbones.mimdet import MIMDetBackbone, MIMDetDecoder, MIMDetEncoder, PaddingAwareRCNN, mimdet_lr_factor, sync_batch_norm

from ...common.data.coco_multiscale_crop import dataloader
from ...common.optim import AdamW as optimizer
from ...common.schedule import warmup_step_lr_multiplier
from ...common.test import test
from ...common.train import train

# The reference counts a COCO epoch as 120,000 images.
ITERS_PER_EPOCH = 120000 // 64
EPOCHS = 36

constants = model_zoo.get_config("common/data/constants.py").constants

# ---- model --------------------------------------------------------------
model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
# Same as GeneralizedRCNN, and passes the unpadded image sizes to the token sampling.
model._target_ = PaddingAwareRCNN
model.pixel_mean = constants.imagenet_rgb256_mean
model.pixel_std = constants.imagenet_rgb256_std
model.input_format = "RGB"

model.backbone.bottom_up = L(MIMDetBackbone)(
    encoder=L(MIMDetEncoder)(
        img_size=800,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        drop_path_rate=0.1,
        norm_layer=partial(nn.LayerNorm, eps=1e-5),
        use_act_checkpoint=True,
        stem_act_checkpoint=True,
    ),
    decoder=L(MIMDetDecoder)(
        img_size="${..encoder.img_size}",
        embed_dim="${..encoder.embed_dim}",
        decoder_embed_dim=512,
        depth=4,
        num_heads=16,
        mlp_ratio=4.0,
        unkept_token_fill="conv_feature",
        use_act_checkpoint=True,
    ),
    sample_ratio=0.5,
    test_sample_ratio=1.0,
)
model.backbone.in_features = ["c2", "c3", "c4", "c5"]
model.backbone.norm = sync_batch_norm

# The "stronger Mask R-CNN" heads: 2 convs in the RPN head, a 4conv1fc box head, and
# SyncBN in the box and mask head convs (RoI counts differ per GPU, hence stats_mode N).
model.proposal_generator.head.conv_dims = [-1, -1]
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]
model.roi_heads.box_head.conv_norm = "naiveSyncBN_N"
model.roi_heads.mask_head.conv_norm = "naiveSyncBN_N"

# ---- checkpoint ---------------------------------------------------------
# The FULL MAE checkpoint: its decoder initialises MIMDet's decoder. Converted by
# d2backbones.mimdet.convert_mae_checkpoint; the encoder-only file is refused.
train.init_checkpoint = "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base_full.pth"

# ---- optimiser and schedule ---------------------------------------------
dataloader.train.total_batch_size = 64

optimizer.lr = 8e-5
optimizer.weight_decay = 0.1
optimizer.params.weight_decay_bias = 0.0
optimizer.params.lr_factor_func = partial(mimdet_lr_factor, encoder_lr_multiplier=2.0)

train.max_iter = ITERS_PER_EPOCH * EPOCHS
train.checkpointer.period = ITERS_PER_EPOCH
train.eval_period = ITERS_PER_EPOCH
train.amp.enabled = True
train.ddp.fp16_compression = True
train.output_dir = "output/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x"

# Warmup over a quarter epoch, from lr 0.
lr_multiplier = warmup_step_lr_multiplier(
    train.max_iter, [ITERS_PER_EPOCH * 27, ITERS_PER_EPOCH * 33], warmup_iters=ITERS_PER_EPOCH / 4, warmup_factor=0.0
)
