"""A detection confusion matrix: which class each confident detection took, object by object.

The detections scoring at least the score threshold are matched to the objects by
IoU alone (:mod:`.matching` with every class pair allowed), so a detection with the
wrong class still finds its object. A background row holds the detections that
match no object, and a background column the objects that no detection matched.
"""
import matplotlib
import numpy as np

from .matching import iou_matrix, match_image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["confusion_matrix", "plot_confusion_matrix"]


def confusion_matrix(images, num_classes, task="bbox", iou_threshold=0.5, score_threshold=0.5):
    """Counts of (true class, predicted class) over ``images`` (:class:`~.records.ImageResult`).

    Returns:
        int64 (K + 1, K + 1), K = ``num_classes``: entry ``[t, p]`` counts the
        detections of class ``p`` matched to an object of class ``t``; row K the
        detections of class ``p`` that matched no object; column K the objects of
        class ``t`` no detection matched; ``[K, K]`` is 0. Detections that match only
        a crowd region, and crowd regions, are not counted.
    """
    background = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for image in images:
        detections = image.detections.subset(image.detections.scores >= score_threshold).by_score()
        truth = image.truth
        match = match_image(iou_matrix(detections, truth, task), truth.crowd, iou_threshold)
        counted = ~match.ignored
        true_classes = np.where(match.truth_index >= 0, truth.classes[np.maximum(match.truth_index, 0)], background)
        np.add.at(matrix, (true_classes[counted], detections.classes[counted]), 1)
        missed = ~match.truth_matched & ~truth.crowd
        np.add.at(matrix, (truth.classes[missed], background), 1)
    return matrix


def plot_confusion_matrix(matrix, class_names, png_path, iou_threshold=0.5, score_threshold=0.5):
    """Draw ``matrix`` with its counts, each row shaded by its share of the row's total."""
    names = [*class_names, "background"]
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = 1.0 + 0.7 * len(names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if shares[row, column] > 0.6 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=9)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted class (background: object missed)")
    axis.set_ylabel("true class (background: no object)")
    axis.set_title(f"IoU >= {iou_threshold:g}, score >= {score_threshold:g}", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the row")
    figure.tight_layout()
    figure.savefig(png_path, dpi=80)
    plt.close(figure)
    return png_path
