"""FPN Cascade Mask R-CNN for a hierarchical backbone, as in the official ConvNeXt and
Swin detection configs ("giou_4conv1f"): the FPN Mask R-CNN of
``mask_rcnn_fpn_hierarchical`` with three box stages at IoU 0.5 / 0.6 / 0.7, each a
4conv1fc head with synchronized BatchNorm and a GIoU box loss of weight 10.

One difference from mmdet: detectron2's cascade regresses class-agnostic boxes
(mmdet's configs regress one box per class), about 1M fewer parameters in the predictors.
"""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

from .mask_rcnn_fpn_hierarchical import model

STAGE_IOUS = (0.5, 0.6, 0.7)
STAGE_BOX_WEIGHTS = ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))

# Single-stage arguments that CascadeROIHeads replaces with per-stage lists.
for key in ("box_head", "box_predictor", "proposal_matcher"):
    model.roi_heads.pop(key)

model.roi_heads.update(
    _target_=CascadeROIHeads,
    box_heads=[
        L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            # mmdet's SyncBN; the naive variant also runs on CPU and in one process.
            conv_norm="naiveSyncBN",
        )
        for _ in STAGE_IOUS
    ],
    box_predictors=[
        L(FastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=1024),
            test_score_thresh=0.05,
            box2box_transform=L(Box2BoxTransform)(weights=weights),
            cls_agnostic_bbox_reg=True,
            box_reg_loss_type="giou",
            loss_weight={"loss_box_reg": 10.0},
            num_classes="${...num_classes}",
        )
        for weights in STAGE_BOX_WEIGHTS
    ],
    proposal_matchers=[
        L(Matcher)(thresholds=[iou], labels=[0, 1], allow_low_quality_matches=False)
        for iou in STAGE_IOUS
    ],
)
