"""SimMIM Swin-B pretraining, the published 800-epoch recipe at 192 px (microsoft/SimMIM
``simmim_pretrain__swin_base__img192_window6__800ep.yaml``, ``config.py`` defaults,
``main_simmim.py``'s lr scaling), for ``tools/train_net.py``:

| setting          | value                                                          |
|------------------|----------------------------------------------------------------|
| data             | ImageNet-1K train, no labels (``--unlabeled``)                 |
| augmentation     | RandomResizedCrop 192, scale 0.67-1.0, bicubic; h-flip         |
| encoder          | Swin-B: dim 128, depths 2-2-18-2, heads 4-8-16-32, window 6, drop path 0; masked patch embeddings replaced by a mask token |
| mask             | random 32-px cells, ratio 0.6: 22 of the 6 x 6 cells           |
| target           | the normalised image's pixels                                  |
| head / loss      | 1 x 1 conv 1024 -> 32 * 32 * 3, PixelShuffle(32); L1 on the masked pixels |
| optimiser        | AdamW, betas (0.9, 0.999), wd 0.05 (none on biases, norms, mask token, rel-pos tables) |
| lr               | base 1e-4 x 2048 / 512 = 4e-4 (SimMIM scales by batch / 512)   |
| batch            | 2048 (16 GPUs x 128)                                           |
| schedule         | 800 epochs = 500,000 iterations; 10 warm-up epochs from 0.005 x lr, then x0.1 at epoch 700 |
| precision        | AMP                                                            |
| not reproduced   | gradient clipping at norm 5 (SimMIM's): the trainer does not clip |

Published: 84.0 top-1 after fine-tuning at 224 px. Run as

    tools/train_net.py --config-file configs/Pretrain/simmim_swin_base_800ep.py --num-gpus 8 \\
        --unlabeled imagenet_train=/datasets/imagenet/train \\
        dataloader.train.total_batch_size=1024 optimizer.lr=2e-4

(a smaller batch takes the lr of SimMIM's rule, ``1e-4 * batch / 512``.) The
encoder's names are the Swin detection backbone's: give the checkpoint to a Swin
config as ``train.init_checkpoint=.../model_final.pth`` (the ``mask_token_mim``
format; the other output norms and the FPN start fresh, the rel-pos tables are
resized to the detector's window).
"""
from detectron2.config import LazyCall as L
from fvcore.common.param_scheduler import CompositeParamScheduler, LinearParamScheduler, MultiStepParamScheduler

from d2backbones.pretrain import MaskTokenPretrainer, RandomMask
from d2backbones.swin import SWIN_SIZES, MaskedSwinTransformer

from ..common.pretrain import AdamW as optimizer
from ..common.pretrain import epoch_iters, unlabeled_dataloader
from ..common.train import train

EPOCHS, WARMUP_EPOCHS, DECAY_EPOCH = 800, 10, 700
BATCH_SIZE = 2048
# SimMIM's linear scaling rule takes batch 512 as its reference.
LR_REFERENCE_BATCH = 512

model = L(MaskTokenPretrainer)(
    encoder=L(MaskedSwinTransformer)(
        **SWIN_SIZES["base"],
        pretrain_img_size="${dataloader.image_size}",
        window_size=6,
        drop_path_rate=0.0,
        out_feature="res5",
    ),
    mask_generator=L(RandomMask)(mask_ratio=0.6, unit=32),
    target="pixels",
    head="pixel_shuffle",
    loss="l1",
    loss_name="loss_simmim",
    input_format="RGB",
)

# The mask cells and the stride-32 output must tile the crop.
dataloader = unlabeled_dataloader("imagenet_train", BATCH_SIZE, num_workers=10, image_size=192,
                                  image_size_multiple=32, scale=(0.67, 1.0))

optimizer.lr = 1e-4 * BATCH_SIZE / LR_REFERENCE_BATCH
optimizer.betas = (0.9, 0.999)
# SimMIM's no_weight_decay: the mask token and Swin's relative-position bias tables.
optimizer.params.overrides = {"mask_token": {"weight_decay": 0.0}, "relative_position_bias_table": {"weight_decay": 0.0}}
train.max_iter = epoch_iters(EPOCHS, BATCH_SIZE)
# Warm-up from SimMIM's WARMUP_LR (5e-7 x the same scaling) to the lr, then one step of x0.1.
lr_multiplier = L(CompositeParamScheduler)(
    schedulers=[
        L(LinearParamScheduler)(start_value=5e-7 / 1e-4, end_value=1.0),
        L(MultiStepParamScheduler)(values=[1.0, 0.1], num_updates=EPOCHS, milestones=[DECAY_EPOCH]),
    ],
    lengths=[WARMUP_EPOCHS / EPOCHS, 1.0 - WARMUP_EPOCHS / EPOCHS],
    # The step's epoch counts from the start of training, not of the second phase.
    interval_scaling=["rescaled", "fixed"],
)
train.amp.enabled = True
train.checkpointer.period = epoch_iters(20, BATCH_SIZE)
train.eval_period = train.max_iter
train.output_dir = "output/pretrain/simmim_swin_base_800ep"
