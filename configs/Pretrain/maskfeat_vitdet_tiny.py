"""Tiny MaskFeat pretraining on the CPU, for ``configs/demo/vitdet_tiny.py`` (and
``mimdet_tiny.py``'s encoder): what it writes is their ``train.init_checkpoint``.

| setting        | MaskFeat ViT-B (published)        | this config                                  |
|----------------|-----------------------------------|----------------------------------------------|
| data           | ImageNet-1K train                 | the synthetic pool (``synthetic_unlabeled``)  |
| augmentation   | RandomResizedCrop 224, 0.5-1.0    | RandomResizedCrop 128, 0.5-1.0; h-flip       |
| encoder        | patch 16, 768 x 12, 12 heads      | patch 8, 128 x 4, 4 heads (vitdet_tiny's ViT) |
| mask           | block-wise 0.4 of 14 x 14 patches | block-wise 0.4 of 16 x 16 patches (102)      |
| target         | HOG 9 bins, 8-px cells, 2 x 2 cells per patch, Gaussian 16 | the same HOG, 1 cell per 8-px patch (27 values), Gaussian 8 |
| head / loss    | linear, MSE on masked patches     | the same                                     |
| optimiser      | AdamW (0.9, 0.999), wd 0.05       | the same                                     |
| lr, batch      | 1.6e-3 at 2048                    | 1.5e-3 at 64 (mae_vitdet_tiny's)             |
| schedule       | 1600 ep, 30 warm-up, cosine       | 600 iterations, 5% warm-up, cosine (mae_vitdet_tiny's) |

Data, batch and schedule are mae_vitdet_tiny's, so the methods compare at one
budget. Then:

    tools/train_net.py --config-file configs/Pretrain/maskfeat_vitdet_tiny.py
    tools/train_net.py --config-file configs/demo/vitdet_tiny.py \\
        train.init_checkpoint=output/pretrain/maskfeat_vitdet_tiny/model_final.pth

The detector reads the checkpoint as an MAE encoder: its window rel-pos tables,
conv residual blocks and pyramid start fresh.
"""
from .mae_vitdet_tiny import dataloader, lr_multiplier, optimizer, train
from .maskfeat_vit_base_1600ep import model

PATCH = 8

model.encoder.update(patch_size=PATCH, embed_dim=128, depth=4, num_heads=4)
model.mask_generator.unit = PATCH
model.target.update(patch_size=PATCH, gaussian_window=PATCH)

dataloader.image_size_multiple = PATCH
dataloader.train.mapper.scale = (0.5, 1.0)
optimizer.betas = (0.9, 0.999)
train.output_dir = "output/pretrain/maskfeat_vitdet_tiny"
