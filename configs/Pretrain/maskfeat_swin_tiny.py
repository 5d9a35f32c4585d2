"""Tiny MaskFeat pretraining of a Swin on the CPU, for ``configs/demo/swin_tiny.py``:
MaskFeat's mask, HOG target, head and loss on simmim_swin_tiny.py's encoder.

| setting        | MaskFeat ViT-B (published)        | this config                                  |
|----------------|-----------------------------------|----------------------------------------------|
| data, augmentation | ImageNet-1K, RandomResizedCrop 224, 0.5-1.0 | the synthetic pool, RandomResizedCrop 128, 0.5-1.0; h-flip |
| encoder        | ViT-B/16                          | swin_tiny's Swin (3 stages, stride 16), with a mask token |
| mask           | block-wise 0.4 of 16-px patches   | block-wise 0.4 of the 8 x 8 stride-16 cells (26), blocks of >= 4 |
| target         | HOG 9 bins, 8-px cells, 2 x 2 cells per patch, Gaussian 16 | the same (108 values per 16-px cell) |
| head / loss    | linear, MSE on masked patches     | the same                                     |
| optimiser      | AdamW (0.9, 0.999), wd 0.05       | the same                                     |
| lr, batch, schedule | 1.6e-3 at 2048, 1600 ep      | mae_vitdet_tiny's: 1.5e-3 at 64, 600 iterations |

    tools/train_net.py --config-file configs/Pretrain/maskfeat_swin_tiny.py
    tools/train_net.py --config-file configs/demo/swin_tiny.py \\
        train.init_checkpoint=output/pretrain/maskfeat_swin_tiny/model_final.pth
"""
from detectron2.config import LazyCall as L

from d2backbones.pretrain import BlockMask, HOGTarget

from .simmim_swin_tiny import dataloader, lr_multiplier, model, optimizer, train

STRIDE = 16

# An 8 x 8 grid holds fewer cells than BEiT's 14 x 14: smaller smallest blocks.
model.mask_generator = L(BlockMask)(mask_ratio=0.4, unit=STRIDE, min_block=4)
model.target = L(HOGTarget)(patch_size=STRIDE, nbins=9, cell_size=8, gaussian_window=STRIDE)
model.head = "linear"
model.loss = "mse"
model.loss_name = "loss_maskfeat"

dataloader.image_size_multiple = STRIDE
dataloader.train.mapper.scale = (0.5, 1.0)
train.output_dir = "output/pretrain/maskfeat_swin_tiny"
