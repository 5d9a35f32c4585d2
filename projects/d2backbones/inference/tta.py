"""Test-time augmentation for LazyConfig detectors: flips and scales, merged.

detectron2's ``GeneralizedRCNNWithTTA`` reads its settings from a yacs config. This
wrapper takes them as arguments (``test.aug`` in a LazyConfig, see :func:`maybe_with_tta`)
and follows the same recipe:

1. run the detector, masks off, on every augmented copy (``DatasetMapperTTA``:
   each short side in ``min_sizes``, capped at ``max_size``, and its mirror image);
2. map the boxes back to the original image and merge the union per class with
   NMS (as detectron2), Gaussian soft-NMS, or weighted boxes fusion;
3. map the merged boxes into every copy, predict masks for them there, mirror
   the flipped ones back, and average the mask probabilities. The mask head reads
   the features of step 1: each copy goes through the backbone once, where
   detectron2's wrapper runs it twice (``model.inference`` with given boxes).

Models that pad every input to a fixed square (ViTDet's ``square_pad``) run a copy
larger than that square padded to its own square, a multiple of the backbone's
``size_divisibility``: the ViT resizes its position embedding and rel-pos tables to
any grid, as it does for a checkpoint pretrained at another size. Copies that fit
the square are padded to it as in plain inference, so the identity scale is exact.
"""
import copy
import logging
import math
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.modeling.roi_heads.fast_rcnn import fast_rcnn_inference_single_image
from detectron2.modeling.test_time_augmentation import DatasetMapperTTA
from detectron2.structures import Boxes, Instances, pairwise_iou
from fvcore.transforms import HFlipTransform
from omegaconf import OmegaConf
from torch import nn

from ..utils import unwrap_parallel

__all__ = ["DetectorWithTTA", "maybe_with_tta", "merge_detections", "soft_nms", "weighted_boxes_fusion"]

logger = logging.getLogger("d2backbones")

# ``test.aug`` keys and their values when a config does not set them.
AUG_DEFAULTS = dict(enabled=False, min_sizes=[], max_size=4000, flip=True, merge="nms", soft_nms_sigma=0.5, batch_size=3)
MERGE_METHODS = ("nms", "soft_nms", "wbf")


def soft_nms(boxes, scores, classes, sigma, score_thresh=1e-3):
    """Gaussian soft-NMS per class (Bodla et al. 2017): instead of dropping a box that
    overlaps a kept one, multiply its score by ``exp(-iou**2 / sigma)``.

    Args:
        boxes (Tensor): (R, 4) XYXY.
        scores (Tensor): (R,).
        classes (Tensor): (R,) class ids; boxes of different classes never interact.
        sigma (float): width of the Gaussian decay; smaller decays more.
        score_thresh (float): boxes whose decayed score falls below it are dropped.

    Returns:
        (Tensor, Tensor): indices into the inputs (K,), highest new score first, and
        their new scores (K,).
    """
    keep, kept_scores = [], []
    for cls in classes.unique():
        idx = torch.nonzero(classes == cls).flatten()
        cls_scores = scores[idx].clone()
        ious = pairwise_iou(Boxes(boxes[idx]), Boxes(boxes[idx]))
        alive = torch.ones(len(idx), dtype=torch.bool, device=boxes.device)
        while alive.any():
            best = torch.where(alive, cls_scores, cls_scores.new_tensor(-1.0)).argmax()
            alive[best] = False
            keep.append(idx[best])
            kept_scores.append(cls_scores[best])
            cls_scores = torch.where(alive, cls_scores * torch.exp(-ious[best] ** 2 / sigma), cls_scores)
            alive &= cls_scores >= score_thresh
    if not keep:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    keep, kept_scores = torch.stack(keep), torch.stack(kept_scores)
    order = kept_scores.argsort(descending=True)
    return keep[order], kept_scores[order]


def weighted_boxes_fusion(boxes, scores, classes, num_copies, iou_thresh):
    """Weighted boxes fusion (Solovyev et al. 2021, the "avg" score of its reference
    code, ``ensemble_boxes.weighted_boxes_fusion``) of the detections of ``num_copies``
    augmented copies of one image.

    In decreasing score order each box joins the cluster of its class whose fused box it
    overlaps most, if by more than ``iou_thresh``, else starts one. A cluster's box is the
    score-weighted mean of its members, its score their mean times
    ``min(members, num_copies) / num_copies``: an object that only one copy finds keeps
    1 / num_copies of its score, where NMS keeps the whole score of the best copy.

    Args:
        boxes (Tensor): (R, 4) XYXY, all copies' boxes in the original image's pixels.
        scores (Tensor): (R,).
        classes (Tensor): (R,) class ids; boxes of different classes never fuse.
        num_copies (int): number of augmented copies the boxes come from.
        iou_thresh (float): IoU with a cluster's fused box above which a box joins it.

    Returns:
        (Tensor, Tensor, Tensor): fused boxes (K, 4), scores (K,), classes (K,), best first.
    """
    # One small step per box, so the per-call cost is what the loop costs, and NumPy's is a
    # fraction of torch's: 600 boxes of six copies fuse in 40 ms against 170 ms in torch.
    boxes_np, scores_np, classes_np = (t.detach().cpu().numpy() for t in (boxes, scores, classes))
    fused_boxes, fused_weights, fused_members, fused_classes = [], [], [], []
    for cls in np.unique(classes_np):
        idx = np.nonzero(classes_np == cls)[0]
        idx = idx[np.argsort(-scores_np[idx], kind="stable")]
        weighted_sums = np.zeros((len(idx), 4), dtype=boxes_np.dtype)
        weights = np.zeros(len(idx), dtype=scores_np.dtype)
        members = np.zeros(len(idx), dtype=np.int64)
        cluster_boxes = np.zeros((len(idx), 4), dtype=boxes_np.dtype)
        clusters = 0
        for box, score in zip(boxes_np[idx], scores_np[idx]):
            k = _best_cluster(box, cluster_boxes[:clusters], iou_thresh)
            if k < 0:
                # A new cluster's box is the box itself (not score * box / score, which may round).
                weighted_sums[clusters], weights[clusters], members[clusters] = score * box, score, 1
                cluster_boxes[clusters] = box
                clusters += 1
                continue
            weighted_sums[k] += score * box
            weights[k] += score
            members[k] += 1
            cluster_boxes[k] = weighted_sums[k] / weights[k]
        fused_boxes.append(cluster_boxes[:clusters])
        fused_weights.append(weights[:clusters])
        fused_members.append(members[:clusters])
        fused_classes.append(np.full(clusters, cls, dtype=classes_np.dtype))
    if not fused_boxes:
        return boxes.new_zeros(0, 4), scores.new_zeros(0), classes.new_zeros(0)
    weights = torch.from_numpy(np.concatenate(fused_weights)).to(scores.device)
    count = torch.from_numpy(np.concatenate(fused_members)).to(device=scores.device, dtype=scores.dtype)
    fused_scores = weights / count * count.clamp(max=num_copies) / num_copies
    order = fused_scores.argsort(descending=True, stable=True)
    fused_boxes = torch.from_numpy(np.concatenate(fused_boxes)).to(boxes.device)
    fused_classes = torch.from_numpy(np.concatenate(fused_classes)).to(classes.device)
    return fused_boxes[order], fused_scores[order], fused_classes[order]


def _best_cluster(box, cluster_boxes, iou_thresh):
    """The index of the cluster box that ``box`` (4,) overlaps most, if by more than
    ``iou_thresh``, else -1. IoU as detectron2's ``pairwise_iou`` (0 without overlap)."""
    if not len(cluster_boxes):
        return -1
    width = np.minimum(cluster_boxes[:, 2], box[2]) - np.maximum(cluster_boxes[:, 0], box[0])
    height = np.minimum(cluster_boxes[:, 3], box[3]) - np.maximum(cluster_boxes[:, 1], box[1])
    inter = np.maximum(width, 0) * np.maximum(height, 0)
    areas = (cluster_boxes[:, 2] - cluster_boxes[:, 0]) * (cluster_boxes[:, 3] - cluster_boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.where(inter > 0, inter / union, 0)
    best = int(ious.argmax())
    return best if ious[best] > iou_thresh else -1


def merge_detections(boxes, scores, classes, image_size, num_classes, nms_thresh, topk, merge="nms", sigma=0.5,
                     num_copies=1):
    """Merge the detections of all augmented copies of one image.

    Args:
        boxes (Tensor): (R, 4) XYXY in the original image's pixels.
        scores (Tensor): (R,).
        classes (Tensor): (R,) class ids in [0, num_classes).
        image_size (tuple[int, int]): (H, W) of the original image; boxes are clipped to it.
        num_classes (int): the detector's number of classes.
        nms_thresh (float): IoU above which NMS drops the lower-scoring box of a class
            (and above which weighted boxes fusion takes two boxes for one object).
        topk (int): detections kept at most (negative: all).
        merge (str): "nms" (detectron2's TTA), "soft_nms" or "wbf"
            (:func:`weighted_boxes_fusion`).
        sigma (float): soft-NMS decay width.
        num_copies (int): augmented copies the detections come from (for "wbf").

    Returns:
        Instances: ``pred_boxes``, ``scores``, ``pred_classes`` of image_size, best first.
    """
    if merge not in MERGE_METHODS:
        raise ValueError(f"test.aug.merge={merge!r} is unknown: use one of {MERGE_METHODS}")
    if merge == "nms":
        # One column per class plus background, as the box predictor's own inference takes.
        scores_2d = scores.new_zeros(len(boxes), num_classes + 1)
        scores_2d[torch.arange(len(boxes)), classes] = scores
        merged, _ = fast_rcnn_inference_single_image(boxes, scores_2d, image_size, 1e-8, nms_thresh, topk)
        return merged
    clipped = Boxes(boxes.clone())
    clipped.clip(image_size)
    if merge == "soft_nms":
        keep, new_scores = soft_nms(clipped.tensor, scores, classes, sigma)
        new_boxes, new_classes = clipped.tensor[keep], classes[keep]
    else:
        new_boxes, new_scores, new_classes = weighted_boxes_fusion(
            clipped.tensor, scores, classes, num_copies, nms_thresh)
    if topk >= 0:
        new_boxes, new_scores, new_classes = new_boxes[:topk], new_scores[:topk], new_classes[:topk]
    merged = Instances(image_size)
    merged.pred_boxes = Boxes(new_boxes)
    merged.scores = new_scores
    merged.pred_classes = new_classes
    return merged


def _last_box_predictor(roi_heads):
    """The box predictor whose test settings hold: the last stage of a cascade."""
    predictor = roi_heads.box_predictor
    return predictor[-1] if isinstance(predictor, nn.ModuleList) else predictor


def _square_size(model):
    """The square every input is padded to (ViTDet's ``square_pad``), 0 if none."""
    return getattr(model.backbone, "padding_constraints", {}).get("square_size", 0)


@contextmanager
def _padded_to(backbone, square):
    """Pad inputs to ``square`` meanwhile (a backbone with a ``square_pad`` attribute)."""
    original = backbone.square_pad
    backbone.square_pad = square
    try:
        yield
    finally:
        backbone.square_pad = original


class DetectorWithTTA(nn.Module):
    """A ``GeneralizedRCNN`` (or subclass, e.g. MIMDet's ``PaddingAwareRCNN``) that
    predicts with test-time augmentation. Called as the detector in eval mode:
    ``list[dict]`` of dataset dicts in, ``[{"instances": Instances}]`` out."""

    def __init__(self, model, min_sizes, max_size=4000, flip=True, merge="nms", soft_nms_sigma=0.5, batch_size=3):
        """
        Args:
            model (GeneralizedRCNN): the detector, optionally DDP-wrapped.
            min_sizes (list[int]): short sides of the scaled copies.
            max_size (int): long side at most.
            flip (bool): add the horizontal mirror of every scaled copy.
            merge (str): "nms", "soft_nms" or "wbf", see :func:`merge_detections`.
            soft_nms_sigma (float): soft-NMS decay width.
            batch_size (int): copies run through the detector at once.
        """
        super().__init__()
        model = unwrap_parallel(model)
        if not isinstance(model, GeneralizedRCNN):
            raise TypeError(f"TTA needs a GeneralizedRCNN, got {type(model).__name__}: turn test.aug.enabled off")
        if getattr(model.roi_heads, "keypoint_on", False) or model.proposal_generator is None:
            raise ValueError("TTA supports box and mask heads with a proposal generator only: turn test.aug.enabled off")
        if not min_sizes:
            raise ValueError("test.aug.min_sizes is empty: give the short sides to test at, e.g. test.aug.min_sizes=[96,128,160]")
        if merge not in MERGE_METHODS:
            raise ValueError(f"test.aug.merge={merge!r} is unknown: use one of {MERGE_METHODS}")
        self.square = _square_size(model)
        if self.square and not hasattr(model.backbone, "square_pad"):
            raise TypeError(f"{type(model.backbone).__name__} pads to a fixed square but has no square_pad attribute "
                            "to pad larger copies with: turn test.aug.enabled off")
        self.model = model
        self.mapper = DatasetMapperTTA(min_sizes=list(min_sizes), max_size=max_size, flip=flip)
        self.merge = merge
        self.sigma = soft_nms_sigma
        self.batch_size = batch_size

    @contextmanager
    def _masks_off(self):
        """Boxes first: the mask head runs once, on the merged boxes."""
        roi_heads = self.model.roi_heads
        mask_on = getattr(roi_heads, "mask_on", False)
        roi_heads.mask_on = False
        try:
            yield
        finally:
            roi_heads.mask_on = mask_on

    def _copy_square(self, copy_input):
        """The square a copy is padded to: the model's (0: none) when the copy fits in
        it, else the smallest multiple of ``size_divisibility`` that holds it."""
        side = max(copy_input["image"].shape[1:3])
        if not self.square or side <= self.square:
            return self.square
        divisor = self.model.backbone.padding_constraints.get("size_divisibility", 0) or 1
        return math.ceil(side / divisor) * divisor

    def _chunks(self, inputs):
        """(square, copy indices) for each group of copies run through the detector
        together: ``batch_size`` at a time, all padded to one square."""
        groups = {}
        for index, copy_input in enumerate(inputs):
            groups.setdefault(self._copy_square(copy_input), []).append(index)
        for square, indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                yield square, indices[start : start + self.batch_size]

    def _box_pass(self, inputs):
        """Every copy's detections (masks off), in its own pixels, as ``model.inference``
        gives them without post-processing; and the features of each chunk, which the
        mask pass reuses: ``([Instances], [(indices, features)])``. The features of all
        copies of one image are held until its masks are predicted."""
        model = self.model
        outputs, features_by_chunk = [None] * len(inputs), []
        for square, chunk in self._chunks(inputs):
            with nullcontext() if square == self.square else _padded_to(model.backbone, square):
                images = model.preprocess_image([inputs[i] for i in chunk])
                features = model.backbone(images.tensor)
            proposals, _ = model.proposal_generator(images, features, None)
            results, _ = model.roi_heads(images, features, proposals, None)
            for i, result in zip(chunk, results):
                outputs[i] = result
            features_by_chunk.append((chunk, features))
        return outputs, features_by_chunk

    def _mask_pass(self, features_by_chunk, given):
        """Masks for the ``given`` boxes of every copy, from the box pass's features (one
        backbone pass per copy, where ``model.inference`` with given boxes would run the
        backbone again)."""
        outputs = [None] * len(given)
        for chunk, features in features_by_chunk:
            results = self.model.roi_heads.forward_with_given_boxes(features, [given[i] for i in chunk])
            for i, result in zip(chunk, results):
                outputs[i] = result
        return outputs

    def forward(self, batched_inputs):
        return [self._one_image(x) for x in batched_inputs]

    def _one_image(self, inputs):
        """inputs: one dataset dict with "image" (C, H, W) and the original "height", "width"."""
        shape = (inputs["height"], inputs["width"])
        copies = self.mapper(inputs)
        transforms = [c.pop("transforms") for c in copies]
        with self._masks_off():
            outputs, features_by_chunk = self._box_pass(copies)
        boxes = [
            torch.as_tensor(t.inverse().apply_box(o.pred_boxes.tensor.cpu().numpy()), device=o.pred_boxes.device)
            for o, t in zip(outputs, transforms)
        ]
        predictor = _last_box_predictor(self.model.roi_heads)
        merged = merge_detections(
            torch.cat(boxes).float(),
            torch.cat([o.scores for o in outputs]),
            torch.cat([o.pred_classes for o in outputs]),
            shape,
            predictor.num_classes,
            predictor.test_nms_thresh,
            predictor.test_topk_per_image,
            self.merge,
            self.sigma,
            num_copies=len(copies),
        )
        if not getattr(self.model.roi_heads, "mask_on", False):
            return {"instances": merged}
        given = [self._boxes_in_copy(merged, c, t) for c, t in zip(copies, transforms)]
        outputs = self._mask_pass(features_by_chunk, given)
        merged.pred_masks = self._mean_masks(outputs, transforms)
        return {"instances": detector_postprocess(merged, *shape)}

    @staticmethod
    def _boxes_in_copy(merged, copy_input, transform):
        """The merged boxes in one augmented copy's pixels, for its mask head."""
        boxes = transform.apply_box(merged.pred_boxes.tensor.cpu().numpy())
        inst = Instances(tuple(copy_input["image"].shape[1:3]))
        inst.pred_boxes = Boxes(torch.as_tensor(boxes, device=merged.scores.device).float())
        inst.pred_classes = merged.pred_classes
        inst.scores = merged.scores
        return inst

    @staticmethod
    def _mean_masks(outputs, transforms):
        """Mask probabilities (N, 1, M, M) averaged over the copies. They are box-relative,
        so a resize needs nothing; a flipped copy's masks are mirrored back."""
        masks = []
        for output, transform in zip(outputs, transforms):
            flipped = any(isinstance(t, HFlipTransform) for t in transform.transforms)
            masks.append(output.pred_masks.flip(dims=[3]) if flipped else output.pred_masks)
        return torch.stack(masks).mean(dim=0)


def aug_settings(cfg):
    """``cfg.test.aug`` over :data:`AUG_DEFAULTS` (a config need not have a ``test`` node)."""
    test = cfg.get("test") or {}
    settings = copy.deepcopy(AUG_DEFAULTS)
    aug = test.get("aug") or {}
    settings.update(OmegaConf.to_container(aug) if OmegaConf.is_config(aug) else dict(aug))
    unknown = sorted(set(settings) - set(AUG_DEFAULTS))
    if unknown:
        raise KeyError(f"test.aug has unknown keys {unknown}: use {sorted(AUG_DEFAULTS)}")
    return settings


def maybe_with_tta(cfg, model):
    """``model`` wrapped in :class:`DetectorWithTTA` when ``test.aug.enabled``, else itself."""
    settings = aug_settings(cfg)
    if not settings.pop("enabled"):
        return model
    logger.info(f"Evaluating with test-time augmentation: {settings}")
    return DetectorWithTTA(model, **settings)
