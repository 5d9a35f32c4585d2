"""SparK ConvNeXt-B pretraining, the published 224 px ImageNet-1K recipe (keyu-tian/SparK
``pretrain/README.md``, ``utils/arg_util.py`` defaults; paper, ICLR 2023), for ``tools/train_net.py``:

| setting          | value                                                               |
|------------------|---------------------------------------------------------------------|
| data             | ImageNet-1K train, no labels (``--unlabeled``)                      |
| augmentation     | RandomResizedCrop 224, scale 0.67-1.0, bicubic; h-flip (SparK's)    |
| encoder          | ConvNeXt-B, dims 128-1024, depths 3-3-27-3, drop path 0.3; sparse (masked dense convs) |
| mask             | 0.6 of the 7 x 7 cells of 32 px (20 kept), random per image         |
| densify          | LayerNorm, a mask token per scale, 1 x 1 (stride 32) / 3 x 3 projections |
| decoder          | light UNet, 5 blocks, width 768 halved per block; SyncBN            |
| target / loss    | normalised pixels per 32 px cell, L2 on the masked cells            |
| optimiser        | LAMB (timm's), betas (0.9, 0.999), global grad norm clip 5          |
| weight decay     | cosine 0.04 -> 0.2; none on biases, norms, layer scales, mask tokens |
| lr               | base 2e-4 x 4096 / 256 = 3.2e-3                                     |
| batch            | 4096                                                                |
| schedule         | 1600 epochs = 499,200 iterations; 40 warm-up epochs from 0.005 x lr, cosine to 0.001 x lr |
| precision        | fp32 (SparK's pretraining uses no AMP)                              |

    tools/train_net.py --config-file configs/Pretrain/spark_convnext_base_1600ep.py --num-gpus 8 \\
        --unlabeled imagenet_train=/datasets/imagenet/train \\
        dataloader.train.total_batch_size=512 optimizer.lr=4e-4

(a smaller batch takes the lr of the scaling rule, ``2e-4 * batch / 256``.) The
encoder's names are the ConvNeXt detection backbone's: give the checkpoint to a
ConvNeXt config as ``train.init_checkpoint=.../model_final.pth`` (the ``spark``
format takes ``sparse_encoder.*``; the output norms and the FPN start fresh).
"""
from detectron2.config import LazyCall as L
from fvcore.common.param_scheduler import CompositeParamScheduler, CosineParamScheduler, LinearParamScheduler

from d2backbones.convnext import CONVNEXT_SIZES as _CONVNEXT_SIZES
from d2backbones.convnext import SparseConvNeXt
from d2backbones.pretrain import SparK
from d2backbones.pretrain.optim import CosineWeightDecayLamb, decay_param_groups

from ..common.pretrain import epoch_iters, scaled_lr, unlabeled_train_loader
from ..common.train import train

EPOCHS, WARMUP_EPOCHS = 1600, 40
BATCH_SIZE = 4096

model = L(SparK)(
    encoder=L(SparseConvNeXt)(**_CONVNEXT_SIZES["base"], drop_path_rate=0.3, num_stages=4),
    img_size="${dataloader.image_size}",
    decoder_width=768,
    decoder_norm="SyncBN",
    densify_norm="LN",
    mask_ratio=0.6,
    target="norm_pixels",
    input_format="RGB",
)

dataloader = dict(
    image_size=224,
    # The mask cells are the encoder's stride-32 grid: the crop must be whole cells.
    image_size_multiple=32,
    train=unlabeled_train_loader("imagenet_train", BATCH_SIZE, num_workers=8),
    # No evaluation while pretraining.
    evaluator=None,
)
dataloader["train"].mapper.scale = (0.67, 1.0)

optimizer = L(CosineWeightDecayLamb)(
    params=L(decay_param_groups)(no_decay_keys=("mask_tokens",)),
    lr=scaled_lr(2e-4, BATCH_SIZE),
    betas=(0.9, 0.999),
    max_grad_norm=5.0,
    weight_decay=0.04,
    weight_decay_end=0.2,
    max_iter="${train.max_iter}",
)

# SparK's lr_wd_annealing: linear from 0.005 x lr over the warm-up, then a half cosine to 0.001 x lr.
lr_multiplier = L(CompositeParamScheduler)(
    schedulers=[
        L(LinearParamScheduler)(start_value=0.005, end_value=1.0),
        L(CosineParamScheduler)(start_value=1.0, end_value=0.001),
    ],
    lengths=[WARMUP_EPOCHS / EPOCHS, 1.0 - WARMUP_EPOCHS / EPOCHS],
    interval_scaling=["rescaled", "rescaled"],
)

train.max_iter = epoch_iters(EPOCHS, BATCH_SIZE)
train.amp.enabled = False
train.checkpointer.period = epoch_iters(20, BATCH_SIZE)
train.eval_period = train.max_iter
train.output_dir = "output/pretrain/spark_convnext_base_1600ep"
