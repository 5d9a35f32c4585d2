"""Tiny ConvNeXt FPN Mask R-CNN trained from scratch on the embedded synthetic shapes.

The fair partner of ``vitdet_tiny.py``: the same data, heads, optimizer and schedule,
and about the same number of parameters (2.1M); only the backbone differs. It keeps
the hierarchical-backbone recipe (timm's ConvNeXt, LayerNorm on each output stage,
detectron2's FPN), shrunk to 128 px inputs:

| part       | ConvNeXt-T (COCO)                 | this demo                         |
|------------|-----------------------------------|-----------------------------------|
| ConvNeXt   | dims 96-768, depths 3-3-9-3       | dims 32-128, depths 2-2-6 (3 stages) |
| pyramid    | FPN P2-P6, 256 ch                 | FPN P2-P4, 64 ch                  |
| heads      | 2fc box head, 4conv mask head     | as vitdet_tiny (2fc 256, 1conv 64)|
| optimiser  | AdamW 1e-4, decay 0.95, 36 epochs | as vitdet_tiny (AdamW 1e-3, cosine, 500 iters) |
"""
from detectron2.config import LazyCall as L
from detectron2.modeling import FPN

from d2backbones.convnext import ConvNeXt

from .vitdet_tiny import PYRAMID_CHANNELS, dataloader, lr_multiplier, model, optimizer, test, train

model.backbone = L(FPN)(
    bottom_up=L(ConvNeXt)(
        # Stage 4 (res5) is not built: the pyramid stops at stride 16, as vitdet_tiny's.
        depths=(2, 2, 6, 2),
        dims=(32, 64, 128, 256),
        drop_path_rate=0.0,
        out_features=("res2", "res3", "res4"),
    ),
    in_features=["res2", "res3", "res4"],
    out_channels=PYRAMID_CHANNELS,
    top_block=None,
)
train.output_dir = "output/demo_convnext_tiny"
