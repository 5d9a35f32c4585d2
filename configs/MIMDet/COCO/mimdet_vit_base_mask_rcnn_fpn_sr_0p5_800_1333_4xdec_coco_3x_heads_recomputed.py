"""MIMDet-B, the COCO 3x recipe of ``mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py``
unchanged, with the RPN, box and mask heads' activations recomputed in backward.

For a card that the recipe runs out of: the reference checkpoints only the ConvStem,
the encoder and the decoder; this config also recomputes the three heads
(:mod:`d2backbones.modeling.checkpointed_heads`). Same model, weights, outputs and
gradients; a training step keeps less and runs the heads' forward twice. Measured
against the official code (``benchmarks/mimdet_vs_official.py``, BENCHMARKS.md), one
800x1216 image, ratio 0.5, one CPU thread, 2026-12-07:

| our config         | peak memory growth, MB (/ official) | step time (/ official) |
|--------------------|-------------------------------------|------------------------|
| the recipe         | 1459 (0.82x)                        | 1.04x                  |
| this config        | 1148 (0.64x)                        | 1.10x                  |
"""
from d2backbones.modeling import (
    CheckpointedFastRCNNConvFCHead,
    CheckpointedMaskRCNNConvUpsampleHead,
    CheckpointedRPNHead,
)

from .mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    test,
    train,
)

model.proposal_generator.head._target_ = CheckpointedRPNHead
model.roi_heads.box_head._target_ = CheckpointedFastRCNNConvFCHead
model.roi_heads.mask_head._target_ = CheckpointedMaskRCNNConvUpsampleHead

train.output_dir = "output/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x_heads_recomputed"
