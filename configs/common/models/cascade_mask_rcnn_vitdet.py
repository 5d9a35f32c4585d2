"""ViTDet Cascade Mask R-CNN: the ViTDet Mask R-CNN with three box stages trained
at increasing IoU, each with its own 4conv1fc LN head and class-agnostic
regression, and box deltas scaled up as the proposals get tighter; detectron2's
``CascadeROIHeads`` with one mask head, as in the ViTDet model zoo."""
from detectron2.modeling.roi_heads import CascadeROIHeads

from d2backbones.layers import LayerNorm2d

from .cascade_stages import cascade_box_stages
from .mask_rcnn_vitdet import model

# Single-stage arguments that CascadeROIHeads replaces with per-stage lists.
for key in ("box_head", "box_predictor", "proposal_matcher"):
    model.roi_heads.pop(key)

model.roi_heads.update(
    _target_=CascadeROIHeads,
    **cascade_box_stages(conv_norm=LayerNorm2d, cls_agnostic_bbox_reg=True),
)
