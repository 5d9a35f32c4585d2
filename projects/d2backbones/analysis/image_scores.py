"""How well each image was detected, to pick the best and worst ones to look at.

An image's score is its F1 at one IoU over the detections scoring at least the
score threshold: 2 TP / (2 TP + FP + FN), matching within each class (:mod:`.matching`).
An image with neither objects nor confident detections scores 1.
"""
from dataclasses import dataclass

import numpy as np

from .matching import iou_matrix, match_image

__all__ = ["ImageScore", "image_scores", "mean_f1", "rank_images"]


@dataclass
class ImageScore:
    """One image's counts at the score threshold and its F1."""

    index: int
    image_id: int
    true_positives: int
    false_positives: int
    missed: int

    @property
    def f1(self):
        errors = self.false_positives + self.missed
        return 1.0 if self.true_positives + errors == 0 else 2 * self.true_positives / (2 * self.true_positives + errors)


def image_scores(images, task="bbox", iou_threshold=0.5, score_threshold=0.5):
    """An :class:`ImageScore` per image of ``images`` (:class:`~.records.ImageResult`), in order."""
    scores = []
    for index, image in enumerate(images):
        detections = image.detections.subset(image.detections.scores >= score_threshold).by_score()
        truth = image.truth
        same_class = detections.classes[:, None] == truth.classes[None, :]
        match = match_image(iou_matrix(detections, truth, task), truth.crowd, iou_threshold, allowed=same_class)
        true_positives = int(match.true_positives.sum())
        counted = int((~match.ignored).sum())
        num_truth = int((~truth.crowd).sum())
        scores.append(ImageScore(index, image.image_id, true_positives, counted - true_positives, num_truth - true_positives))
    return scores


def rank_images(scores, count):
    """The ``count`` best and ``count`` worst :class:`ImageScore` s, best and worst first.

    Best: highest F1, then most objects found. Worst: lowest F1, then most errors
    (false positives + missed). Further ties keep the dataset's order."""
    best = sorted(scores, key=lambda s: (-s.f1, -s.true_positives))[:count]
    worst = sorted(scores, key=lambda s: (s.f1, -(s.false_positives + s.missed)))[:count]
    return best, worst


def mean_f1(scores):
    """The mean of the images' F1, a float (0 for no images)."""
    return float(np.mean([s.f1 for s in scores])) if scores else 0.0
