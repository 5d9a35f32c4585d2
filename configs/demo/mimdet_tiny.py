"""Tiny MIMDet Mask R-CNN trained from scratch on the embedded synthetic shapes.

The fair mini-comparison with ``vitdet_tiny.py``: the same data, augmentation, heads,
optimiser and 500-iteration schedule (imported from it), and an encoder of the same
width, depth and heads. Only the backbone differs:

| part            | ViTDet tiny                        | MIMDet tiny (this)                        |
|-----------------|------------------------------------|-------------------------------------------|
| stem            | 8 x 8 patchify conv                | ConvStem: 4 3x3 s2 convs, 16-128 ch       |
| tokens          | 16 x 16 (stride 8), all            | 8 x 8 (stride 16); half in training       |
| ViT             | 128 x 4, 4 heads, win 8, 2 global  | 128 x 4, 4 heads, all global              |
|                 | + 2 conv residual blocks           | + decoder 96 x 2, 3 heads (conv-feature fill) |
| pyramid input   | ViT map rescaled x2, x1, x0.5      | ConvStem c2, c3 + decoder c4              |
| pyramid         | P2-P4, 64 ch, LN                   | FPN P2-P4, 64 ch, BN (SyncBN on >1 GPU)   |
"""
from detectron2.config import LazyCall as L
from detectron2.modeling import FPN

from d2backbones.mimdet import MIMDetBackbone, MIMDetDecoder, MIMDetEncoder, PaddingAwareRCNN, sync_batch_norm

from .vitdet_tiny import IMAGE_SIZE_REF, PYRAMID_CHANNELS, dataloader, lr_multiplier, model, optimizer, test, train

model._target_ = PaddingAwareRCNN
model.backbone = L(FPN)(
    bottom_up=L(MIMDetBackbone)(
        encoder=L(MIMDetEncoder)(
            # pos_embed is stored at the grid of an image_size square (image_size / 16).
            img_size=IMAGE_SIZE_REF,
            embed_dim=128,
            depth=4,
            num_heads=4,
            mlp_ratio=4.0,
            drop_path_rate=0.0,
        ),
        decoder=L(MIMDetDecoder)(
            img_size="${..encoder.img_size}",
            embed_dim="${..encoder.embed_dim}",
            decoder_embed_dim=96,
            depth=2,
            num_heads=3,
            mlp_ratio=4.0,
            unkept_token_fill="conv_feature",
        ),
        sample_ratio=0.5,
        test_sample_ratio=1.0,
    ),
    # The levels of vitdet_tiny (strides 4-16); c5 would be 4 x 4 at 128 px.
    in_features=["c2", "c3", "c4"],
    out_channels=PYRAMID_CHANNELS,
    norm=sync_batch_norm,
    top_block=None,
)

train.output_dir = "output/demo_mimdet"
