"""FPN Cascade Mask R-CNN for a hierarchical backbone, as in the official ConvNeXt and
Swin detection configs (mmdet's ``CascadeRoIHead``, "giou_4conv1f"): the FPN Mask R-CNN
of ``mask_rcnn_fpn_hierarchical`` with three stages at IoU 0.5 / 0.6 / 0.7, each with

| part        | per stage                                                        |
|-------------|------------------------------------------------------------------|
| box head    | 4conv1fc with synchronized BatchNorm                             |
| box output  | one box per class, GIoU loss of weight 10                        |
| mask head   | its own 4-conv mask head, loss weight 1 / 0.5 / 0.25             |

At test the stages' class scores and sigmoid masks are averaged; see
:class:`d2backbones.modeling.MMDetCascadeROIHeads` for the rules it shares with mmdet.
"""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import MaskRCNNConvUpsampleHead

from d2backbones.modeling import MMDetCascadeROIHeads

from .cascade_stages import STAGE_IOUS, cascade_box_stages
from .mask_rcnn_fpn_hierarchical import model

# Single-stage arguments that the cascade replaces with per-stage lists.
for key in ("box_head", "box_predictor", "proposal_matcher", "mask_head"):
    model.roi_heads.pop(key)

model.roi_heads.update(
    _target_=MMDetCascadeROIHeads,
    **cascade_box_stages(
        # mmdet's SyncBN; the naive variant also runs on CPU and in one process.
        conv_norm="naiveSyncBN",
        cls_agnostic_bbox_reg=False,
        box_reg_loss_type="giou",
        loss_weight={"loss_box_reg": 10.0},
    ),
    # The single-stage Mask R-CNN's head (4 convs and a deconvolution), once per stage.
    mask_heads=[
        L(MaskRCNNConvUpsampleHead)(
            input_shape=ShapeSpec(channels=256, width=14, height=14),
            num_classes="${...num_classes}",
            conv_dims=[256, 256, 256, 256, 256],
        )
        for _ in STAGE_IOUS
    ],
    mask_loss_weights=[1.0, 0.5, 0.25],
)
