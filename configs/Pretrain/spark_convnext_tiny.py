"""Tiny SparK pretraining on the CPU, for ``configs/demo/convnext_tiny.py``: what it
writes is that detector's ``train.init_checkpoint``.

| setting        | SparK ConvNeXt-B (published)       | this config                                   |
|----------------|------------------------------------|-----------------------------------------------|
| data           | ImageNet-1K train                  | the synthetic pool (``synthetic_unlabeled``)   |
| augmentation   | RandomResizedCrop 224, 0.67-1.0    | RandomResizedCrop 128, 0.2-1.0 (MAE's, as every tiny pretraining); h-flip |
| encoder        | ConvNeXt-B, 4 stages, drop path 0.3 | convnext_tiny's: dims 32-128, depths 2-2-6, 3 stages, no drop path |
| mask cell      | 32 px (the stride of stage 4)      | 16 px (the stride of stage 3, the detector's last): 8 x 8 cells |
| mask / target  | 0.6, normalised pixels, L2         | the same                                      |
| densify        | LN, mask token per scale           | the same                                      |
| decoder        | 5 UNet blocks, width 768, SyncBN   | 4 UNet blocks, width 96, BN                   |
| optimiser      | LAMB (0.9, 0.999), clip 5, wd 0.04 -> 0.2 | AdamW (0.9, 0.95), wd 0.05: mae_vitdet_tiny's |
| lr, batch      | 3.2e-3 at 4096                     | 1.5e-3 at 64                                  |
| schedule       | 1600 ep, 40 warm-up, cosine        | 600 iterations, 5% warm-up, cosine            |

The detector stops at stride 16 (``res4``), so the encoder does too, and the mask
cells are its stride: 8 x 8 cells at 128 px, as SparK's 7 x 7 at 224. Batch,
iterations and optimiser are ``mae_vitdet_tiny.py``'s (the same images seen, the same
steps). LAMB is for batches of thousands: in 80 steps at batch 16, 128 px and a
constant lr, the loss (mean of the first and of the last 8 steps) went 0.99 -> 0.86
with LAMB at 3.2e-3, 0.97 -> 0.70 at 1e-2, and 0.96 -> 0.50 with this AdamW. Then:

    tools/train_net.py --config-file configs/Pretrain/spark_convnext_tiny.py
    tools/train_net.py --config-file configs/demo/convnext_tiny.py \\
        train.init_checkpoint=output/pretrain/spark_convnext_tiny/model_final.pth

The detector's output norms (``norm{i}``) and FPN are detection-only and start fresh.
"""
import torch
from detectron2.config import LazyCall as L

from d2backbones.pretrain.optim import decay_param_groups

from ..common.pretrain import unlabeled_train_loader
from ..demo.convnext_tiny import model as _detector
from .spark_convnext_base_1600ep import dataloader, lr_multiplier, model, train

_bottom_up = _detector.backbone.bottom_up
# Stages 1-3: the detector's outputs res2-res4.
model.encoder.update(
    depths=_bottom_up.depths, dims=_bottom_up.dims, drop_path_rate=_bottom_up.drop_path_rate, num_stages=3
)
model.decoder_width = 96
model.decoder_norm = "BN"

dataloader.image_size = 128
dataloader.image_size_multiple = 16
dataloader.train = unlabeled_train_loader("synthetic_unlabeled", 64, num_workers=1)

optimizer = L(torch.optim.AdamW)(
    params=L(decay_param_groups)(no_decay_keys=("mask_tokens",)), lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05
)
lr_multiplier.lengths = [0.05, 0.95]
train.max_iter = 600
train.checkpointer.period = 300
train.eval_period = train.max_iter
train.log_period = 20
train.seed = 42
train.device = "cpu"
train.output_dir = "output/pretrain/spark_convnext_tiny"
