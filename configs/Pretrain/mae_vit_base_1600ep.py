"""MAE ViT-B/16 pretraining, the published 1600-epoch recipe (facebookresearch/mae
``PRETRAIN.md``), for ``tools/train_net.py``:

| setting          | value                                                   |
|------------------|---------------------------------------------------------|
| data             | ImageNet-1K train, no labels (``--unlabeled``)          |
| augmentation     | RandomResizedCrop 224, scale 0.2-1.0, bicubic; h-flip   |
| encoder          | ViT-B/16: 768 x 12, 12 heads; visible tokens only       |
| decoder          | 512 x 8, 16 heads                                       |
| mask ratio       | 0.75, random per image                                  |
| target / loss    | normalised pixels per patch (norm_pix_loss), MSE on masked patches |
| optimiser        | AdamW, betas (0.9, 0.95), wd 0.05 (none on biases, norms) |
| lr               | base 1.5e-4 x 4096 / 256 = 2.4e-3                        |
| batch            | 4096 (e.g. 64 GPUs x 64)                                |
| schedule         | 1600 epochs = 499,200 iterations; 40 warm-up epochs (12,480 it), cosine to 0 |
| precision        | AMP                                                     |

    tools/train_net.py --config-file configs/Pretrain/mae_vit_base_1600ep.py --num-gpus 8 \\
        --unlabeled imagenet_train=/datasets/imagenet/train \\
        dataloader.train.total_batch_size=512 optimizer.lr=3e-4

(a smaller batch takes the lr of the scaling rule, ``1.5e-4 * batch / 256``.) The
checkpoint holds MAE's parameter names: give it to a ViTDet or MIMDet config as
``train.init_checkpoint=.../model_final.pth``.
"""
from detectron2.config import LazyCall as L

from d2backbones.pretrain import MaskedAutoencoderViT

from ..common.pretrain import AdamW as optimizer
from ..common.pretrain import epoch_iters, scaled_lr, unlabeled_train_loader, warmup_cosine_lr_multiplier
from ..common.train import train

EPOCHS, WARMUP_EPOCHS = 1600, 40
BATCH_SIZE = 4096

model = L(MaskedAutoencoderViT)(
    img_size="${dataloader.image_size}",
    patch_size=16,
    embed_dim=768,
    depth=12,
    num_heads=12,
    decoder_embed_dim=512,
    decoder_depth=8,
    decoder_num_heads=16,
    mlp_ratio=4.0,
    mask_ratio=0.75,
    target="norm_pixels",
    input_format="RGB",
)

dataloader = dict(
    image_size=224,
    # pos_embed is fixed at the patch grid: the crop must be whole patches.
    image_size_multiple=16,
    train=unlabeled_train_loader("imagenet_train", BATCH_SIZE, num_workers=10),
    # No evaluation while pretraining.
    evaluator=None,
)

optimizer.lr = scaled_lr(1.5e-4, BATCH_SIZE)
train.max_iter = epoch_iters(EPOCHS, BATCH_SIZE)
lr_multiplier = warmup_cosine_lr_multiplier(WARMUP_EPOCHS / EPOCHS)
train.amp.enabled = True
# MAE saves every 20 epochs.
train.checkpointer.period = epoch_iters(20, BATCH_SIZE)
train.eval_period = train.max_iter
train.output_dir = "output/pretrain/mae_vit_base_1600ep"
