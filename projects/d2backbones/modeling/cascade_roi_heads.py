"""Cascade Mask R-CNN heads as in mmdet 2.x (``CascadeRoIHead``), the heads of the official
ConvNeXt and Swin detection recipes, on top of detectron2's :class:`CascadeROIHeads`.

Two things differ from detectron2's cascade:

* **Class-specific box regression.** Each stage's predictor regresses one box per class.
  Between stages a proposal moves to the box of one class: in training its matched
  ground-truth class, or, for a background proposal, the best-scoring object class; at
  test the best-scoring object class (mmdet's ``regress_by_class``). The final boxes are
  the last stage's class-specific boxes, scored by the average of the stages'
  probabilities (detectron2's rule; mmdet averages the logits before its softmax).
* **A mask head per stage.** In training each stage's mask head learns from that stage's
  foreground proposals, its loss weighted by mmdet's stage weights (1, 0.5, 0.25). At test
  every stage's mask head runs on the final detections and their sigmoid masks are
  averaged (mmdet merges the stages' masks by their mean).

Kept from detectron2: proposals are sampled once, before the first stage, and later stages
re-match the refined boxes without re-sampling (mmdet re-samples at every stage); box
losses are summed over stages with the gradient into the features scaled by 1 / #stages
(mmdet weights the box losses by the stage weights instead).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNOutputLayers
from detectron2.modeling.roi_heads.fast_rcnn import fast_rcnn_inference
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage
from torch import nn

__all__ = ["MMDetCascadeROIHeads", "CascadeStage", "select_class_boxes"]

# mmdet's ``stage_loss_weights`` of the three-stage Cascade R-CNN.
MMDET_STAGE_LOSS_WEIGHTS = (1.0, 0.5, 0.25)


class CascadeStage(NamedTuple):
    """What one cascade stage saw and predicted.

    predictor: the stage's box predictor.
    predictions: its outputs, ``(scores (R, K+1), deltas (R, K*4))`` over all images.
    proposals: per image, the stage's input proposals (``proposal_boxes``; in training
        also the matched ``gt_*`` fields).
    """

    predictor: FastRCNNOutputLayers
    predictions: Tuple[torch.Tensor, torch.Tensor]
    proposals: List[Instances]


def select_class_boxes(boxes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The box of each row's class.

    Args:
        boxes: (R, K*4) class-specific boxes, or (R, 4) class-agnostic ones.
        classes: (R,) class index of each row, in [0, K).

    Returns:
        (R, 4): row i's box for ``classes[i]``; class-agnostic boxes pass through.
    """
    if boxes.shape[1] == 4:
        return boxes
    per_class = boxes.reshape(len(boxes), boxes.shape[1] // 4, 4)
    return per_class[torch.arange(len(boxes), device=boxes.device), classes]


class MMDetCascadeROIHeads(CascadeROIHeads):
    """detectron2's :class:`CascadeROIHeads` with mmdet's class-specific refinement and
    one mask head per stage (see the module docstring for the exact rules).

    Takes the arguments of :class:`CascadeROIHeads` with ``mask_heads`` (one per stage)
    in place of ``mask_head``. Parameters are stored as ``mask_head.{stage}.*``.
    """

    @configurable
    def __init__(
        self,
        *,
        mask_heads: Optional[List[nn.Module]] = None,
        mask_loss_weights: Sequence[float] = MMDET_STAGE_LOSS_WEIGHTS,
        **kwargs,
    ):
        """
        Args:
            mask_heads: a mask head (``BaseMaskRCNNHead``) per stage, or None for a
                box-only cascade (then ``mask_in_features`` must be None too).
            mask_loss_weights: weight of each stage's mask loss.
            kwargs: the arguments of :class:`CascadeROIHeads`, without ``mask_head``.
        """
        if kwargs.get("mask_head") is not None:
            raise ValueError(f"{type(self).__name__} takes `mask_heads=` (one per stage), not `mask_head=`.")
        if kwargs.get("keypoint_in_features") is not None:
            raise ValueError(f"{type(self).__name__} has no keypoint branch; set keypoint_in_features=None.")
        with_masks = kwargs.get("mask_in_features") is not None
        if with_masks != (mask_heads is not None):
            raise ValueError(
                "`mask_heads` and `mask_in_features` go together: give both for masks, neither for boxes only "
                f"(got mask_heads={'a list' if mask_heads is not None else None}, "
                f"mask_in_features={kwargs.get('mask_in_features')})."
            )
        if with_masks and kwargs.get("mask_pooler") is None:
            raise ValueError(f"{type(self).__name__} pools mask features itself and needs a `mask_pooler`.")
        super().__init__(mask_head=nn.ModuleList(mask_heads) if with_masks else None, **kwargs)
        stages = self.num_cascade_stages
        if with_masks and len(mask_heads) != stages:
            raise ValueError(f"{len(mask_heads)} mask heads for {stages} cascade stages; give one per stage.")
        if len(mask_loss_weights) != stages:
            raise ValueError(f"{len(mask_loss_weights)} mask loss weights for {stages} cascade stages.")
        self.mask_loss_weights = tuple(mask_loss_weights)

    @classmethod
    def from_config(cls, cfg, input_shape):
        raise NotImplementedError(
            f"{cls.__name__} is built from a LazyConfig "
            "(configs/common/models/cascade_mask_rcnn_fpn_hierarchical.py), not from a yacs config."
        )

    def forward(self, images, features, proposals, targets=None):
        """Same inputs and outputs as :meth:`ROIHeads.forward`; in training the losses are
        ``loss_{cls,box_reg,mask}_stage{k}``."""
        del images
        if not self.training:
            instances = self._forward_box(features, proposals)
            return self.forward_with_given_boxes(features, instances), {}
        proposals = self.label_and_sample_proposals(proposals, targets)
        stages = self._run_cascade(features, proposals, targets)
        losses = self._box_losses(stages)
        if self.mask_on:
            losses.update(self._mask_losses(features, stages))
        return proposals, losses

    def _forward_box(self, features, proposals, targets=None):
        """The cascade's box losses (training) or detections (inference), as in
        :meth:`CascadeROIHeads._forward_box`."""
        stages = self._run_cascade(features, proposals, targets)
        return self._box_losses(stages) if self.training else self._box_inference(stages)

    def _run_cascade(
        self, features: Dict[str, torch.Tensor], proposals: List[Instances], targets=None
    ) -> List[CascadeStage]:
        """Runs every stage, each on the previous stage's refined boxes.

        Args:
            features: the FPN levels by name, each (N, C, Hi, Wi).
            proposals: per image, the first stage's proposals (in training, labelled).
            targets: per image, the ground truth (training only).
        """
        box_features = [features[f] for f in self.box_in_features]
        image_sizes = [x.image_size for x in proposals]
        stages = []
        for k in range(self.num_cascade_stages):
            if k > 0:
                proposals = self._create_proposals_from_boxes(self._refine_boxes(stages[-1]), image_sizes)
                if self.training:
                    proposals = self._match_and_label_boxes(proposals, k, targets)
            predictions = self._run_stage(box_features, proposals, k)
            stages.append(CascadeStage(self.box_predictor[k], predictions, proposals))
        return stages

    @torch.no_grad()
    def _refine_boxes(self, stage: CascadeStage) -> List[torch.Tensor]:
        """The next stage's proposal boxes: per image (Ri, 4), each proposal regressed
        with the deltas of the class :meth:`_refinement_classes` picks."""
        boxes = stage.predictor.predict_boxes(stage.predictions, stage.proposals)
        classes = self._refinement_classes(stage)
        return [select_class_boxes(b, c) for b, c in zip(boxes, classes)]

    def _refinement_classes(self, stage: CascadeStage) -> List[torch.Tensor]:
        """Per image, (Ri,) the class whose box each proposal moves to: the best-scoring
        object class, replaced in training by the matched ground-truth class of
        foreground proposals."""
        probs = stage.predictor.predict_probs(stage.predictions, stage.proposals)
        classes = []
        for probs_per_image, proposals_per_image in zip(probs, stage.proposals):
            best_object_class = probs_per_image[:, :-1].argmax(dim=1)
            if proposals_per_image.has("gt_classes"):
                gt_classes = proposals_per_image.gt_classes
                is_object = (gt_classes >= 0) & (gt_classes < self.num_classes)
                best_object_class = torch.where(is_object, gt_classes, best_object_class)
            classes.append(best_object_class)
        return classes

    @torch.no_grad()
    def _match_and_label_boxes(self, proposals, stage, targets):
        """Labels each refined proposal with the ground truth it matches at ``stage``'s
        IoU, carrying every ``gt_*`` field (``gt_masks`` included, which the stage's mask
        head trains on); unmatched proposals get the background class.

        Args:
            proposals (list[Instances]): per image, the stage's ``proposal_boxes``.
            stage (int): the stage whose matcher is used.
            targets (list[Instances]): per image, the ground truth.
        """
        num_foreground = []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            iou = pairwise_iou(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)
            matched_idxs, matched_labels = self.proposal_matchers[stage](iou)
            if len(targets_per_image) > 0:
                for name, value in targets_per_image.get_fields().items():
                    if name.startswith("gt_"):
                        proposals_per_image.set(name, value[matched_idxs])
                proposals_per_image.gt_classes[matched_labels == 0] = self.num_classes
            else:
                proposals_per_image.gt_classes = torch.full_like(matched_idxs, self.num_classes)
                no_boxes = targets_per_image.gt_boxes.tensor.new_zeros((len(matched_idxs), 4))
                proposals_per_image.gt_boxes = Boxes(no_boxes)
            num_foreground.append((matched_labels == 1).sum().item())
        self._log_stage_samples(stage, num_foreground, [len(p) for p in proposals])
        return proposals

    @staticmethod
    def _log_stage_samples(stage: int, num_foreground: List[int], num_proposals: List[int]) -> None:
        """Mean foreground / background proposals per image at ``stage``, under
        detectron2's cascade names."""
        storage = get_event_storage()
        num_images = len(num_proposals)
        storage.put_scalar(f"stage{stage}/roi_head/num_fg_samples", sum(num_foreground) / num_images)
        storage.put_scalar(
            f"stage{stage}/roi_head/num_bg_samples", (sum(num_proposals) - sum(num_foreground)) / num_images
        )

    def _box_losses(self, stages: List[CascadeStage]) -> Dict[str, torch.Tensor]:
        """Each stage's ``loss_cls`` and ``loss_box_reg``, suffixed ``_stage{k}``."""
        storage = get_event_storage()
        losses = {}
        for k, stage in enumerate(stages):
            with storage.name_scope(f"stage{k}"):
                stage_losses = stage.predictor.losses(stage.predictions, stage.proposals)
            losses.update({f"{name}_stage{k}": value for name, value in stage_losses.items()})
        return losses

    def _box_inference(self, stages: List[CascadeStage]) -> List[Instances]:
        """Per image, the detections: the last stage's class-specific boxes with the
        stages' class probabilities averaged, after score threshold and per-class NMS."""
        probs_per_stage = [stage.predictor.predict_probs(stage.predictions, stage.proposals) for stage in stages]
        probs = [sum(per_image) / len(stages) for per_image in zip(*probs_per_stage)]
        last = stages[-1]
        boxes = last.predictor.predict_boxes(last.predictions, last.proposals)
        instances, _ = fast_rcnn_inference(
            boxes,
            probs,
            [x.image_size for x in last.proposals],
            last.predictor.test_score_thresh,
            last.predictor.test_nms_thresh,
            last.predictor.test_topk_per_image,
        )
        return instances

    def _pool_mask_features(self, features: Dict[str, torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """(M, C, S, S) mask-head input for the M boxes of all images."""
        return self.mask_pooler([features[f] for f in self.mask_in_features], boxes)

    def _mask_losses(self, features: Dict[str, torch.Tensor], stages: List[CascadeStage]) -> Dict[str, torch.Tensor]:
        """``loss_mask_stage{k}``: stage k's mask head on stage k's foreground proposals,
        times the stage's weight."""
        losses = {}
        for k, (stage, head, weight) in enumerate(zip(stages, self.mask_head, self.mask_loss_weights)):
            foreground, _ = select_foreground_proposals(stage.proposals, self.num_classes)
            mask_features = self._pool_mask_features(features, [x.proposal_boxes for x in foreground])
            losses[f"loss_mask_stage{k}"] = head(mask_features, foreground)["loss_mask"] * weight
        return losses

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]) -> List[Instances]:
        """Inference: sets ``pred_masks`` (Ri, 1, M, M) on each image's detections, the
        mean over stages of each mask head's sigmoid mask for the predicted class."""
        if not self.mask_on:
            return instances
        mask_features = self._pool_mask_features(features, [x.pred_boxes for x in instances])
        masks_per_stage = []
        for head in self.mask_head:
            # In eval mode a mask head writes its sigmoid masks to ``pred_masks``.
            head(mask_features, instances)
            masks_per_stage.append([x.pred_masks for x in instances])
        for instances_per_image, masks in zip(instances, zip(*masks_per_stage)):
            instances_per_image.pred_masks = torch.stack(masks).mean(dim=0)
        return instances
