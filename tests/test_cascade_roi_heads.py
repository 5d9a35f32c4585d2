"""mmdet-style Cascade Mask R-CNN heads (ConvNeXt / Swin recipes): one mask head per stage,
class-specific refinement between stages, stage-averaged masks at test. Tiny heads from the
real config: 3 classes, 16-channel pyramid, two 96 x 96 images."""
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import CascadeROIHeads
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from d2backbones.modeling import MMDetCascadeROIHeads
from d2backbones.modeling.cascade_roi_heads import CascadeStage

MODELS = Path(__file__).resolve().parents[1] / "configs" / "common" / "models"
HIERARCHICAL = MODELS / "cascade_mask_rcnn_fpn_hierarchical.py"
VITDET = MODELS / "cascade_mask_rcnn_vitdet.py"
NUM_CLASSES = 3
CHANNELS = 16
IMAGE = (96, 96)
STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
# Per image: ground-truth boxes (XYXY) and their classes.
GROUND_TRUTH = [([[8, 10, 50, 40], [40, 46, 88, 90]], [0, 2]), ([[20, 20, 70, 60]], [1])]


def tiny_heads_config(**overrides):
    """The hierarchical cascade's ``roi_heads`` config with slim heads."""
    cfg = LazyConfig.load(str(HIERARCHICAL)).model.roi_heads
    cfg.update(num_classes=NUM_CLASSES, batch_size_per_image=32, **overrides)
    for head in cfg.box_heads:
        head.update(input_shape=ShapeSpec(channels=CHANNELS, height=7, width=7), conv_dims=[8], fc_dims=[32])
    for predictor in cfg.box_predictors:
        predictor.input_shape = ShapeSpec(channels=32)
    for head in cfg.mask_heads:
        head.update(input_shape=ShapeSpec(channels=CHANNELS, height=14, width=14), conv_dims=[8, 8])
    return cfg


def tiny_heads(**overrides):
    torch.manual_seed(0)
    return instantiate(tiny_heads_config(**overrides))


def box_masks(boxes):
    """(N, H, W) masks filling each box."""
    masks = torch.zeros(len(boxes), *IMAGE, dtype=torch.bool)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
        mask[y0:y1, x0:x1] = True
    return masks


def inputs():
    """(features, proposals, targets) in detectron2's ``ROIHeads`` conventions: pyramid
    levels by name, and per image 24-32 proposals (jittered ground truth and random boxes)
    and the ground truth with masks."""
    generator = torch.Generator().manual_seed(1)
    features = {
        name: torch.randn(len(GROUND_TRUTH), CHANNELS, IMAGE[0] // s, IMAGE[1] // s, generator=generator)
        for name, s in STRIDES.items()
    }
    proposals, targets = [], []
    for boxes, classes in GROUND_TRUTH:
        boxes = torch.tensor(boxes, dtype=torch.float32)
        gt_masks = BitMasks(box_masks(boxes))
        targets.append(Instances(IMAGE, gt_boxes=Boxes(boxes), gt_classes=torch.tensor(classes), gt_masks=gt_masks))
        jittered = boxes.repeat(8, 1) + 3 * torch.randn(8 * len(boxes), 4, generator=generator)
        corners = 60 * torch.rand(16, 2, generator=generator)
        random_boxes = torch.cat([corners, corners + 8 + 28 * torch.rand(16, 2, generator=generator)], dim=1)
        candidates = Boxes(torch.cat([jittered, random_boxes]))
        candidates.clip(IMAGE)
        proposals.append(Instances(IMAGE, proposal_boxes=candidates, objectness_logits=torch.zeros(len(candidates))))
    return features, proposals, targets


def training_losses(heads):
    features, proposals, targets = inputs()
    torch.manual_seed(2)
    with EventStorage():
        _, losses = heads.train()(None, features, proposals, targets)
    return losses


def test_the_hierarchical_cascade_is_mmdets_and_the_vitdet_cascade_stays_detectron2s():
    hierarchical = LazyConfig.load(str(HIERARCHICAL)).model.roi_heads
    vitdet = LazyConfig.load(str(VITDET)).model.roi_heads
    assert hierarchical._target_ is MMDetCascadeROIHeads and vitdet._target_ is CascadeROIHeads
    assert "mask_head" not in hierarchical and len(hierarchical.mask_heads) == 3
    assert [p.cls_agnostic_bbox_reg for p in hierarchical.box_predictors] == [False] * 3
    assert [p.cls_agnostic_bbox_reg for p in vitdet.box_predictors] == [True] * 3
    # One stage table: the same IoUs and box weights in both cascades.
    for cfg in (hierarchical, vitdet):
        assert [m.thresholds for m in cfg.proposal_matchers] == [[0.5], [0.6], [0.7]]
        assert [list(p.box2box_transform.weights) for p in cfg.box_predictors] == [
            [10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]
        ]


def test_every_stage_trains_its_own_mask_head():
    heads = tiny_heads()
    assert len(heads.mask_head) == 3
    assert len({id(p) for head in heads.mask_head for p in head.parameters()}) == 3 * len(
        list(heads.mask_head[0].parameters())
    )
    assert all(p.bbox_pred.out_features == 4 * NUM_CLASSES for p in heads.box_predictor)

    losses = training_losses(heads)
    names = ("loss_cls", "loss_box_reg", "loss_mask")
    assert set(losses) == {f"{name}_stage{k}" for name in names for k in range(3)}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for head in heads.mask_head:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_an_image_without_objects_is_background_at_every_stage():
    heads = tiny_heads().train()
    features, proposals, targets = inputs()
    no_boxes = torch.zeros(0, 4)
    no_classes = torch.zeros(0, dtype=torch.long)
    no_masks = BitMasks(box_masks(no_boxes))
    targets[1] = Instances(IMAGE, gt_boxes=Boxes(no_boxes), gt_classes=no_classes, gt_masks=no_masks)
    torch.manual_seed(2)
    with EventStorage():
        stages = heads._run_cascade(features, heads.label_and_sample_proposals(proposals, targets), targets)
    for stage in stages:
        assert bool((stage.proposals[1].gt_classes == NUM_CLASSES).all())
        assert bool((stage.proposals[0].gt_classes < NUM_CLASSES).any())


def test_mask_losses_carry_mmdets_stage_weights():
    weighted = training_losses(tiny_heads())
    unweighted = training_losses(tiny_heads(mask_loss_weights=[1.0, 1.0, 1.0]))
    for k, weight in enumerate((1.0, 0.5, 0.25)):
        torch.testing.assert_close(weighted[f"loss_mask_stage{k}"], weight * unweighted[f"loss_mask_stage{k}"])
        torch.testing.assert_close(weighted[f"loss_cls_stage{k}"], unweighted[f"loss_cls_stage{k}"])


# Class scores (R, K+1) of four proposals; the last column is background.
SCORES = torch.tensor([[0.0, 5, 0, 0], [5, 0, 0, 9], [0, 0, 5, 0], [0, 1, 0, 0]])
PROPOSALS = torch.tensor([[10.0, 10, 40, 40], [20, 30, 60, 50], [0, 0, 30, 20], [50, 50, 90, 80]])
DELTAS = torch.tensor([[5.0, -3, 2, 1], [-2, 4, -1, 3], [3, 3, 1, -2], [-4, 1, 2, 2]])


def refine(heads, classes, gt_classes=None):
    """Stage 0's refined boxes when only ``classes[i]``'s deltas of proposal i are non-zero,
    and the boxes those deltas give."""
    deltas = torch.zeros(len(PROPOSALS), NUM_CLASSES, 4)
    deltas[torch.arange(len(PROPOSALS)), classes] = DELTAS
    proposals = Instances(IMAGE, proposal_boxes=Boxes(PROPOSALS))
    if gt_classes is not None:
        proposals.gt_classes = torch.tensor(gt_classes)
    predictor = heads.box_predictor[0]
    stage = CascadeStage(predictor, (SCORES, deltas.flatten(1)), [proposals])
    expected = predictor.box2box_transform.apply_deltas(DELTAS, PROPOSALS)
    return heads._refine_boxes(stage)[0], expected


def test_refinement_at_test_uses_the_best_scoring_object_class():
    heads = tiny_heads().eval()
    # Row 1's background score is highest; its best object class is 0.
    refined, expected = refine(heads, classes=[1, 0, 2, 1])
    torch.testing.assert_close(refined, expected)
    assert not torch.allclose(refined, PROPOSALS, atol=1.0)


def test_refinement_in_training_uses_the_matched_class_and_the_best_object_class_for_background():
    heads = tiny_heads()
    background = NUM_CLASSES
    refined, expected = refine(heads, classes=[2, 0, 2, 0], gt_classes=[2, background, background, 0])
    torch.testing.assert_close(refined, expected)


def predict(heads):
    features, proposals, _ = inputs()
    with torch.no_grad():
        instances, _ = heads.eval()(None, features, proposals)
    return features, instances


def test_inference_gives_boxes_scores_classes_and_masks():
    _, instances = predict(tiny_heads())
    assert len(instances) == len(GROUND_TRUTH)
    for detections in instances:
        n = len(detections)
        assert 0 < n <= 100
        assert detections.pred_boxes.tensor.shape == (n, 4)
        assert detections.scores.shape == (n,) and bool((detections.scores >= 0.05).all())
        assert detections.pred_classes.shape == (n,)
        assert set(detections.pred_classes.tolist()) <= set(range(NUM_CLASSES))
        assert detections.pred_masks.shape == (n, 1, 28, 28)
        assert bool(((detections.pred_masks >= 0) & (detections.pred_masks <= 1)).all())


def test_inference_masks_are_the_mean_of_the_stages_sigmoid_masks():
    heads = tiny_heads()
    features, instances = predict(heads)
    boxes = [x.pred_boxes for x in instances]
    classes = torch.cat([x.pred_classes for x in instances])
    with torch.no_grad():
        pooled = heads.mask_pooler([features[f] for f in heads.mask_in_features], boxes)
        stage_masks = [head.layers(pooled)[torch.arange(len(classes)), classes].sigmoid() for head in heads.mask_head]
    torch.testing.assert_close(torch.cat([x.pred_masks for x in instances])[:, 0], torch.stack(stage_masks).mean(0))
    assert not torch.allclose(stage_masks[0], stage_masks[1])


def test_a_mask_head_per_stage_is_required():
    cfg = tiny_heads_config()
    cfg.mask_heads.pop()
    with pytest.raises(ValueError, match="2 mask heads for 3 cascade stages"):
        instantiate(cfg)
