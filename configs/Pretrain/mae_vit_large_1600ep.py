"""MAE ViT-L/16 pretraining, the published 1600-epoch recipe: that of
``mae_vit_base_1600ep.py`` with the larger encoder.

| setting          | value                                                   |
|------------------|---------------------------------------------------------|
| data             | ImageNet-1K train, no labels (``--unlabeled``)          |
| augmentation     | RandomResizedCrop 224, scale 0.2-1.0, bicubic; h-flip   |
| encoder          | ViT-L/16: 1024 x 24, 16 heads; visible tokens only      |
| decoder          | 512 x 8, 16 heads                                       |
| mask ratio       | 0.75, random per image                                  |
| target / loss    | normalised pixels per patch (norm_pix_loss), MSE on masked patches |
| optimiser        | AdamW, betas (0.9, 0.95), wd 0.05 (none on biases, norms) |
| lr               | base 1.5e-4 x 4096 / 256 = 2.4e-3                        |
| batch            | 4096                                                    |
| schedule         | 1600 epochs = 499,200 iterations; 40 warm-up epochs, cosine to 0 |
| precision        | AMP                                                     |
"""
from .mae_vit_base_1600ep import dataloader, lr_multiplier, model, optimizer, train

model.embed_dim = 1024
model.depth = 24
model.num_heads = 16
train.output_dir = "output/pretrain/mae_vit_large_1600ep"
