"""ViTDet, ViT-L Mask R-CNN, 100 epochs: the ViT-B recipe with a larger ViT,
more drop path and milder layer-wise lr decay."""
from functools import partial

from d2backbones.vitdet import vit_lr_decay_rate

from ...common.models.mask_rcnn_vitdet import windowed_blocks
from ...common.test import test
from .mask_rcnn_vitdet_b_100ep import dataloader, lr_multiplier, model, optimizer, train

train.init_checkpoint = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_large.pth?matching_heuristics=True"

model.backbone.net.update(
    embed_dim=1024,
    depth=24,
    num_heads=16,
    drop_path_rate=0.4,
    window_block_indexes=windowed_blocks(24, global_blocks=(5, 11, 17, 23)),
)

optimizer.params.lr_factor_func = partial(vit_lr_decay_rate, num_layers=24, lr_decay_rate=0.8)
