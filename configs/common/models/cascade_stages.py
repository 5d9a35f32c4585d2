"""The three box stages of Cascade R-CNN, written once for every cascade config: stage k
matches its proposals at IoU 0.5 / 0.6 / 0.7 and runs its own 4conv1fc box head and
predictor, whose box deltas are scaled up as the proposals get tighter."""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import FastRCNNConvFCHead, FastRCNNOutputLayers

STAGE_IOUS = (0.5, 0.6, 0.7)
STAGE_BOX_WEIGHTS = ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))


def cascade_box_stages(conv_norm, **predictor_options):
    """``box_heads``, ``box_predictors`` and ``proposal_matchers`` of a cascade's
    ``roi_heads``, one per stage.

    Args:
        conv_norm: norm of the box heads' convs: a detectron2 ``get_norm`` name
            ("naiveSyncBN", ...) or a callable of the channel count (``LayerNorm2d``).
        predictor_options: ``FastRCNNOutputLayers`` arguments shared by the stages
            (``cls_agnostic_bbox_reg``, box loss, ...).
    """
    return dict(
        box_heads=[
            L(FastRCNNConvFCHead)(
                input_shape=ShapeSpec(channels=256, height=7, width=7),
                conv_dims=[256, 256, 256, 256],
                fc_dims=[1024],
                conv_norm=conv_norm,
            )
            for _ in STAGE_IOUS
        ],
        box_predictors=[
            L(FastRCNNOutputLayers)(
                input_shape=ShapeSpec(channels=1024),
                test_score_thresh=0.05,
                box2box_transform=L(Box2BoxTransform)(weights=weights),
                num_classes="${...num_classes}",
                **predictor_options,
            )
            for weights in STAGE_BOX_WEIGHTS
        ],
        proposal_matchers=[
            L(Matcher)(thresholds=[iou], labels=[0, 1], allow_low_quality_matches=False) for iou in STAGE_IOUS
        ],
    )
