"""Per-category precision-recall curves at one IoU, and their AP as COCO computes it."""
from dataclasses import dataclass

import matplotlib
import numpy as np

from .matching import iou_matrix, match_image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["PRCurve", "interpolated_ap", "plot_pr_curves", "pr_curves"]

# COCO's recall points: 0, 0.01, ..., 1.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass
class PRCurve:
    """One category's curve: a point per detection, by decreasing score.

    Attributes:
        precision, recall, scores: float64 (D,), after each detection in turn
            (detections ignored by a crowd region left out).
        num_truth (int): the category's ground-truth objects (crowd regions not counted).
        ap (float or None): :func:`interpolated_ap`, None without ground truth (COCO
            leaves such a category out of its mean).
    """

    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    num_truth: int
    ap: float


def interpolated_ap(precision, recall):
    """COCO's AP of one curve: the mean over 101 recall points of the best precision
    reached at that recall or beyond (0 past the last recall)."""
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(np.asarray(precision, dtype=np.float64)[::-1])[::-1]
    indices = np.searchsorted(recall, RECALL_POINTS, side="left")
    reached = indices < len(envelope)
    return float(np.where(reached, envelope[np.minimum(indices, len(envelope) - 1)], 0.0).mean())


def _category_points(images, category, task, iou_threshold, max_dets):
    """(scores, true-positive flags) of the category's counted detections, and its object count."""
    scores, positives, num_truth = [], [], 0
    for image in images:
        detections = image.detections.subset(image.detections.classes == category).by_score(max_dets)
        truth = image.truth.subset(image.truth.classes == category)
        num_truth += int((~truth.crowd).sum())
        match = match_image(iou_matrix(detections, truth, task), truth.crowd, iou_threshold)
        scores.append(detections.scores[~match.ignored])
        positives.append(match.true_positives[~match.ignored])
    return np.concatenate(scores), np.concatenate(positives), num_truth


def pr_curves(images, num_classes, task="bbox", iou_threshold=0.5, max_dets=100):
    """The :class:`PRCurve` of every category, a list indexed by contiguous class id.

    Matching is COCO's (:mod:`.matching`), per image and category, on each image's
    ``max_dets`` best detections of the category."""
    curves = []
    for category in range(num_classes):
        scores, positives, num_truth = _category_points(images, category, task, iou_threshold, max_dets)
        order = np.argsort(-scores, kind="mergesort")
        scores, positives = scores[order], positives[order]
        true_count = np.cumsum(positives)
        precision = true_count / np.arange(1, len(scores) + 1)
        recall = true_count / max(num_truth, 1)
        curves.append(PRCurve(precision, recall, scores, num_truth, interpolated_ap(precision, recall) if num_truth else None))
    return curves


def _operating_point(curve, score_threshold):
    """(recall, precision) of the detections scoring at least ``score_threshold``, or None."""
    kept = np.flatnonzero(curve.scores >= score_threshold)
    return (curve.recall[kept[-1]], curve.precision[kept[-1]]) if len(kept) else None


def plot_pr_curves(curves, class_names, png_path, iou_threshold=0.5, score_threshold=None):
    """One panel per category: the raw curve, its COCO envelope, and the point of
    ``score_threshold`` (the detections the other figures draw) when given."""
    columns = min(4, len(curves))
    rows = -(-len(curves) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for axis, curve, name in zip(axes.flat, curves, class_names):
        if len(curve.recall):
            envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
            axis.plot(curve.recall, curve.precision, color="0.7", linewidth=1, label="raw")
            # From recall 0, where COCO's interpolation reads the envelope's first value.
            axis.step(np.r_[0.0, curve.recall], np.r_[envelope[0], envelope], where="pre", color="C0", label="interpolated")
            point = _operating_point(curve, score_threshold) if score_threshold is not None else None
            if point is not None:
                axis.plot(*point, "o", color="C3", label=f"score >= {score_threshold:g}")
        ap = "no objects" if curve.ap is None else f"AP{round(iou_threshold * 100)} {100 * curve.ap:.1f}"
        axis.set_title(f"{name} ({ap})", fontsize=10)
        axis.set_xlim(0, 1.02)
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("recall")
        axis.set_ylabel("precision")
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(curves):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(png_path, dpi=80)
    plt.close(figure)
    return png_path
