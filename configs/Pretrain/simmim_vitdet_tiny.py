"""Tiny SimMIM pretraining of a plain ViT on the CPU, for ``configs/demo/vitdet_tiny.py``
(and ``mimdet_tiny.py``'s encoder): what it writes is their ``train.init_checkpoint``.

| setting        | SimMIM (published, Swin-B / ViT-B) | this config                                 |
|----------------|------------------------------------|---------------------------------------------|
| data           | ImageNet-1K train                  | the synthetic pool (``synthetic_unlabeled``) |
| augmentation   | RandomResizedCrop 192/224, 0.67-1.0 | RandomResizedCrop 128, 0.67-1.0; h-flip    |
| encoder        | ViT-B: patch 16, 768 x 12          | patch 8, 128 x 4, 4 heads (vitdet_tiny's ViT), drop path 0 |
| mask           | random 32-px cells (2 x 2 patches), 0.6 | random 16-px cells (2 x 2 patches), 0.6: 39 of 64 |
| target / head  | pixels; 1 x 1 conv + PixelShuffle(16) | pixels; 1 x 1 conv + PixelShuffle(8)     |
| loss           | L1 on masked pixels                | the same                                    |
| optimiser      | AdamW (0.9, 0.999), wd 0.05        | the same                                    |
| lr, batch      | 4e-4 at 2048                       | 1.5e-3 at 64 (mae_vitdet_tiny's)            |
| schedule       | 800 ep, 10 warm-up, step at 700    | 600 iterations, 5% warm-up, cosine (mae_vitdet_tiny's) |

The mask cells keep SimMIM ViT-B's two patches per side. Data, batch and schedule are
mae_vitdet_tiny's, so the methods compare at one budget. Then:

    tools/train_net.py --config-file configs/Pretrain/simmim_vitdet_tiny.py
    tools/train_net.py --config-file configs/demo/vitdet_tiny.py \\
        train.init_checkpoint=output/pretrain/simmim_vitdet_tiny/model_final.pth
"""
from detectron2.config import LazyCall as L

from d2backbones.pretrain import MaskTokenViT

from .mae_vitdet_tiny import dataloader, lr_multiplier, optimizer, train
from .simmim_swin_base_800ep import model

PATCH = 8

model.encoder = L(MaskTokenViT)(
    img_size="${dataloader.image_size}", patch_size=PATCH, embed_dim=128, depth=4, num_heads=4, drop_path_rate=0.0
)
model.mask_generator.unit = 2 * PATCH

dataloader.image_size_multiple = 2 * PATCH
dataloader.train.mapper.scale = (0.67, 1.0)
optimizer.betas = (0.9, 0.999)
train.output_dir = "output/pretrain/simmim_vitdet_tiny"
