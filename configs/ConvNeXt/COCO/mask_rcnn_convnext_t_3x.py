"""ConvNeXt-T Mask R-CNN, 3x (36 epochs) of COCO with multi-scale 480-800 + crop, from ImageNet-1K.

Recipe of the official ConvNeXt detection config
(``mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k``):

| setting              | value                                              |
|----------------------|----------------------------------------------------|
| optimizer            | AdamW, lr 1e-4, wd 0.05 (none on norms, biases, layer scales) |
| layer-wise lr decay  | 0.95 over 6 layer ids ("layer_wise", 9-block stage 3) |
| drop path            | 0.4                                                |
| schedule             | 36 epochs, batch 16, lr x0.1 at epochs 27 and 33, 500 warmup iterations |
| precision            | mixed                                              |
| published            | 46.2 box AP, 41.7 mask AP, 48M parameters          |
"""
from functools import partial

from detectron2.config import LazyCall as L

from d2backbones.convnext import ConvNeXt, convnext_lr_decay_rate

from ...common.data.coco_multiscale_crop import dataloader
from ...common.models.mask_rcnn_fpn_hierarchical import model
from ...common.optim import AdamW as optimizer
from ...common.schedule import coco_step_schedule
from ...common.test import test
from ...common.train import train

model.backbone.bottom_up = L(ConvNeXt)(
    depths=(3, 3, 9, 3),
    dims=(96, 192, 384, 768),
    drop_path_rate=0.4,
    # As the official configs; the checkpoint overwrites it.
    layer_scale_init_value=1.0,
)
dataloader.train.mapper.image_format = "RGB"
dataloader.test.mapper.image_format = "RGB"

train.amp.enabled = True
train.init_checkpoint = "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224.pth"

train.max_iter, lr_multiplier = coco_step_schedule(epochs=36, drop_epochs=(27, 33), batch_size=16, warmup_iters=500)

optimizer.lr = 1e-4
optimizer.weight_decay = 0.05
optimizer.params.weight_decay_bias = 0.0
optimizer.params.overrides = {"gamma": {"weight_decay": 0.0}}
optimizer.params.lr_factor_func = partial(convnext_lr_decay_rate, num_layers=6, lr_decay_rate=0.95)
