"""MaskFeat ViT-B/16 pretraining on images, the published 1600-epoch recipe (Wei et al.,
CVPR 2022, image appendix; mmselfsup's reproduction for what the paper leaves out),
for ``tools/train_net.py``:

| setting          | value                                                          |
|------------------|----------------------------------------------------------------|
| data             | ImageNet-1K train, no labels (``--unlabeled``)                 |
| augmentation     | RandomResizedCrop 224, scale 0.5-1.0, bicubic; h-flip          |
| encoder          | ViT-B/16: 768 x 12, 12 heads; all tokens, masked ones replaced by a mask token |
| mask             | block-wise (BEiT's), ratio 0.4: 78 of the 14 x 14 patches, blocks of >= 15 |
| target           | HOG: Sobel per RGB channel, 9 bins, 8-px cells, per-cell L2, Gaussian window 16; 108 values per patch |
| head / loss      | linear 768 -> 108; MSE on the masked patches                   |
| optimiser        | AdamW, betas (0.9, 0.999), wd 0.05 (none on biases, norms)     |
| lr               | base 2e-4 x 2048 / 256 = 1.6e-3                                |
| batch            | 2048                                                           |
| schedule         | 1600 epochs = 1,000,000 iterations; 30 warm-up epochs, cosine to 0 |
| drop path        | 0                                                              |
| precision        | AMP                                                            |
| not reproduced   | gradient clipping at norm 0.02 (mmselfsup's): the trainer does not clip |

Published: 84.0 top-1 after fine-tuning. Run as

    tools/train_net.py --config-file configs/Pretrain/maskfeat_vit_base_1600ep.py --num-gpus 8 \\
        --unlabeled imagenet_train=/datasets/imagenet/train \\
        dataloader.train.total_batch_size=512 optimizer.lr=4e-4

(a smaller batch takes the lr of the scaling rule, ``2e-4 * batch / 256``.) The
checkpoint's encoder is an MAE-named ViT: give it to a ViTDet config as
``train.init_checkpoint=.../model_final.pth`` (read as an MAE encoder).
"""
from detectron2.config import LazyCall as L

from d2backbones.pretrain import BlockMask, HOGTarget, MaskTokenPretrainer, MaskTokenViT

from ..common.pretrain import AdamW as optimizer
from ..common.pretrain import epoch_iters, scaled_lr, unlabeled_dataloader, warmup_cosine_lr_multiplier
from ..common.train import train

EPOCHS, WARMUP_EPOCHS = 1600, 30
BATCH_SIZE = 2048
PATCH = 16

model = L(MaskTokenPretrainer)(
    encoder=L(MaskTokenViT)(
        img_size="${dataloader.image_size}",
        patch_size=PATCH,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        drop_path_rate=0.0,
    ),
    # Masks and targets are per patch: the mask cells are the patches.
    mask_generator=L(BlockMask)(mask_ratio=0.4, unit=PATCH, min_block=15),
    target=L(HOGTarget)(patch_size=PATCH, nbins=9, cell_size=8, gaussian_window=PATCH),
    head="linear",
    loss="mse",
    loss_name="loss_maskfeat",
    input_format="RGB",
)

# pos_embed is fixed at the patch grid: the crop must be whole patches.
dataloader = unlabeled_dataloader("imagenet_train", BATCH_SIZE, num_workers=10, image_size=224,
                                  image_size_multiple=PATCH, scale=(0.5, 1.0))

optimizer.lr = scaled_lr(2e-4, BATCH_SIZE)
optimizer.betas = (0.9, 0.999)
train.max_iter = epoch_iters(EPOCHS, BATCH_SIZE)
lr_multiplier = warmup_cosine_lr_multiplier(WARMUP_EPOCHS / EPOCHS)
train.amp.enabled = True
train.checkpointer.period = epoch_iters(20, BATCH_SIZE)
train.eval_period = train.max_iter
train.output_dir = "output/pretrain/maskfeat_vit_base_1600ep"
