"""Tiny SimMIM pretraining of a Swin on the CPU, for ``configs/demo/swin_tiny.py``: what
it writes is its ``train.init_checkpoint``.

| setting        | SimMIM Swin-B (published)          | this config                                  |
|----------------|------------------------------------|----------------------------------------------|
| data           | ImageNet-1K train                  | the synthetic pool (``synthetic_unlabeled``)  |
| augmentation   | RandomResizedCrop 192, 0.67-1.0    | RandomResizedCrop 128, 0.67-1.0; h-flip      |
| encoder        | dim 128, depths 2-2-18-2, window 6, stride 32 | swin_tiny's: dim 32, depths 2-2-4 (3 stages), window 8, stride 16 |
| mask           | random 32-px cells, 0.6            | the same: 10 of 4 x 4 cells                  |
| target / head  | pixels; 1 x 1 conv + PixelShuffle(32) | pixels; 1 x 1 conv + PixelShuffle(16)    |
| loss           | L1 on masked pixels                | the same                                     |
| optimiser      | AdamW (0.9, 0.999), wd 0.05        | the same                                     |
| lr, batch      | 4e-4 at 2048                       | 1.5e-3 at 64 (mae_vitdet_tiny's)             |
| schedule       | 800 ep, 10 warm-up, step at 700    | 600 iterations, 5% warm-up, cosine (mae_vitdet_tiny's) |

Data, batch and schedule are mae_vitdet_tiny's, so the methods and families compare
at one budget. Then:

    tools/train_net.py --config-file configs/Pretrain/simmim_swin_tiny.py
    tools/train_net.py --config-file configs/demo/swin_tiny.py \\
        train.init_checkpoint=output/pretrain/simmim_swin_tiny/model_final.pth

The detector gets the patch embedding, the three stages and the res4 output norm;
the res2 and res3 output norms and the FPN start fresh.
"""
from .mae_vitdet_tiny import dataloader, lr_multiplier, optimizer, train
from .simmim_swin_base_800ep import model

# configs/demo/swin_tiny.py's Swin; its res5 stage is not built there, nor here.
model.encoder.update(embed_dim=32, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8), window_size=8, out_feature="res4")

dataloader.image_size_multiple = 32
dataloader.train.mapper.scale = (0.67, 1.0)
optimizer.betas = (0.9, 0.999)
optimizer.params.overrides = {"mask_token": {"weight_decay": 0.0}, "relative_position_bias_table": {"weight_decay": 0.0}}
train.output_dir = "output/pretrain/simmim_swin_tiny"
