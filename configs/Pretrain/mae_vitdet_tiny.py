"""Tiny MAE pretraining on the CPU, for ``configs/demo/vitdet_tiny.py`` and
``configs/demo/mimdet_tiny.py``: what it writes is their ``train.init_checkpoint``.

| setting        | MAE ViT-B (published)           | this config                                |
|----------------|---------------------------------|--------------------------------------------|
| data           | ImageNet-1K train               | the synthetic pool (``synthetic_unlabeled``) |
| augmentation   | RandomResizedCrop 224, 0.2-1.0  | RandomResizedCrop 128, 0.2-1.0; h-flip     |
| encoder        | patch 16, 768 x 12, 12 heads    | patch 8, 128 x 4, 4 heads (vitdet_tiny's ViT) |
| decoder        | 512 x 8, 16 heads               | 96 x 2, 3 heads (mimdet_tiny's decoder)    |
| mask / target  | 0.75, normalised pixels         | the same                                   |
| optimiser      | AdamW (0.9, 0.95), wd 0.05      | the same                                   |
| lr, batch      | 2.4e-3 at 4096                  | 1.5e-3 at 64                               |
| schedule       | 1600 ep, 40 warm-up, cosine     | 600 iterations, 5% warm-up, cosine         |

The decoder is mimdet_tiny's (MIMDet fine-tunes from the MAE decoder, so their
widths must agree); the encoder is vitdet_tiny's ViT, whose windowed blocks,
rel-pos tables and conv residual blocks are detection-only additions that start
fresh. Then:

    tools/train_net.py --config-file configs/Pretrain/mae_vitdet_tiny.py
    tools/train_net.py --config-file configs/demo/vitdet_tiny.py \\
        train.init_checkpoint=output/pretrain/mae_vitdet_tiny/model_final.pth

Any folder of images instead of the pool: ``--unlabeled mine=DIR
dataloader.train.dataset.names=mine``; a finite pool: ``synthetic_unlabeled_20000``.
"""
from functools import partial

import torch.nn as nn

from ..common.pretrain import unlabeled_train_loader, warmup_cosine_lr_multiplier
from .mae_vit_base_1600ep import dataloader, model, optimizer, train

model.patch_size = 8
model.embed_dim = 128
model.depth = 4
model.num_heads = 4
model.decoder_embed_dim = 96
model.decoder_depth = 2
model.decoder_num_heads = 3
model.norm_layer = partial(nn.LayerNorm, eps=1e-6)

dataloader.image_size = 128
dataloader.image_size_multiple = 8
dataloader.train = unlabeled_train_loader("synthetic_unlabeled", 64, num_workers=1)

optimizer.lr = 1.5e-3
lr_multiplier = warmup_cosine_lr_multiplier(0.05)
train.max_iter = 600
train.amp.enabled = False
train.checkpointer.period = 300
train.eval_period = train.max_iter
train.log_period = 20
train.seed = 42
train.device = "cpu"
train.output_dir = "output/pretrain/mae_vitdet_tiny"
