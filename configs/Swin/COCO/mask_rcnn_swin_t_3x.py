"""Swin-T Mask R-CNN, 3x (36 epochs) of COCO with multi-scale 480-800 + crop, from ImageNet-1K.

Recipe of the official Swin detection config
(``mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco``):

| setting     | value                                                              |
|-------------|--------------------------------------------------------------------|
| backbone    | Swin-T, window 7, drop path 0.2                                    |
| optimizer   | AdamW, lr 1e-4, wd 0.05 (none on norms and relative-position tables) |
| lr decay    | none                                                               |
| schedule    | 36 epochs, batch 16, lr x0.1 at epochs 27 and 33, 500 warmup iterations |
| precision   | mixed                                                              |
| published   | 46.0 box AP, 41.6 mask AP, 48M parameters                          |
"""
from detectron2.config import LazyCall as L

from d2backbones.swin import SwinTransformer

from ...common.data.coco_multiscale_crop import dataloader
from ...common.models.mask_rcnn_fpn_hierarchical import model
from ...common.optim import AdamW as optimizer
from ...common.schedule import coco_step_schedule
from ...common.test import test
from ...common.train import train

model.backbone.bottom_up = L(SwinTransformer)(
    embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.2
)
dataloader.train.mapper.image_format = "RGB"
dataloader.test.mapper.image_format = "RGB"

train.amp.enabled = True
train.init_checkpoint = "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth"

train.max_iter, lr_multiplier = coco_step_schedule(epochs=36, drop_epochs=(27, 33), batch_size=16, warmup_iters=500)

optimizer.lr = 1e-4
optimizer.weight_decay = 0.05
optimizer.params.overrides = {"relative_position_bias_table": {"weight_decay": 0.0}}
