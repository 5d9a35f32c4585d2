"""Swin-B Cascade Mask R-CNN in the ViTDet-project recipe (detectron2's
``projects/ViTDet/configs/COCO/cascade_mask_rcnn_swin_b_in21k_50ep.py``), from ImageNet-21K.

The ViTDet Cascade Mask R-CNN heads (LN in FPN and heads, 2-conv RPN, 4conv1fc LN box
heads) on an FPN over Swin-B:

| setting     | value                                                        |
|-------------|--------------------------------------------------------------|
| data        | LSJ 1024 (scale 0.1-2.0), batch 64                           |
| backbone    | Swin-B, window 7, drop path 0.4                              |
| optimizer   | AdamW, lr 4e-5, wd 0.05 (none on norms and relative-position tables) |
| schedule    | 50 epochs, lr x0.1 at ~44.4 and ~48.1 epochs, 250 warmup iterations |
| precision   | mixed                                                        |
| published   | 53.9 box AP, 46.2 mask AP (detectron2 ViTDet model zoo)      |
"""
from detectron2.config import LazyCall as L
from detectron2.modeling import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from d2backbones.swin import SwinTransformer

from ...common.data.coco_lsj import dataloader
from ...common.models.cascade_mask_rcnn_vitdet import model
from ...common.optim import AdamW as optimizer
from ...common.schedule import coco_iters, step_lr_multiplier
from ...common.test import test
from ...common.train import train

model.backbone = L(FPN)(
    bottom_up=L(SwinTransformer)(
        embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7, drop_path_rate=0.4
    ),
    in_features=["res2", "res3", "res4", "res5"],
    out_channels=256,
    norm="LN",
    top_block=L(LastLevelMaxPool)(),
    # The LSJ crop side (1024), as ViTDet's.
    square_pad="${dataloader.image_size}",
)

train.amp.enabled = True
train.ddp.fp16_compression = True
# The official Swin release (keys ``layers.*``), converted on load.
train.init_checkpoint = "detectron2://ImageNetPretrained/swin/swin_base_patch4_window7_224_22k.pth"

train.max_iter = coco_iters(epochs=50)
lr_multiplier = step_lr_multiplier(epochs=50)

optimizer.lr = 4e-5
optimizer.weight_decay = 0.05
optimizer.params.overrides = {"relative_position_bias_table": {"weight_decay": 0.0}}
