"""ViTDet, ViT-H Mask R-CNN, 75 epochs: the ViT-B recipe with ViT-H (its MAE
patch-14 embedding resampled to patch 16), more drop path, milder layer-wise lr
decay and a shorter schedule."""
from functools import partial

from d2backbones.vitdet import vit_lr_decay_rate

from ...common.models.mask_rcnn_vitdet import windowed_blocks
from ...common.schedule import coco_iters, step_lr_multiplier
from ...common.test import test
from .mask_rcnn_vitdet_b_100ep import dataloader, model, optimizer, train

train.init_checkpoint = (
    "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_huge_p14to16.pth?matching_heuristics=True"
)

model.backbone.net.update(
    embed_dim=1280,
    depth=32,
    num_heads=16,
    drop_path_rate=0.5,
    window_block_indexes=windowed_blocks(32, global_blocks=(7, 15, 23, 31)),
)

optimizer.params.lr_factor_func = partial(vit_lr_decay_rate, num_layers=32, lr_decay_rate=0.9)
# detectron2's released ViT-H configs decay every parameter, norms and pos_embed included.
optimizer.params.overrides = {}
optimizer.params.weight_decay_norm = None

train.max_iter = coco_iters(epochs=75)
lr_multiplier = step_lr_multiplier(epochs=75)
