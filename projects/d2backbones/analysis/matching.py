"""Matching detections to ground truth at one IoU threshold, as COCO's evaluation does.

Detections are taken in decreasing score order; each takes the unmatched ground-truth
object it overlaps most, if that IoU reaches the threshold. One that reaches no such
object but overlaps a crowd region by the threshold is *ignored*: neither right nor
wrong (a crowd region absorbs any number of detections). IoU is pycocotools', with
its crowd rule (a crowd region's IoU is the intersection over the detection's area).
"""
import numpy as np
import pycocotools.mask as mask_util

__all__ = ["Match", "iou_matrix", "match_image"]


def iou_matrix(detections, truth, task):
    """IoU of every detection with every ground-truth object: float64 (D, G)."""
    if len(detections) == 0 or len(truth) == 0:
        return np.zeros((len(detections), len(truth)))
    ious = mask_util.iou(detections.regions(task), truth.regions(task), truth.crowd.astype(np.uint8).tolist())
    return np.asarray(ious, dtype=np.float64).reshape(len(detections), len(truth))


class Match:
    """The match of one image's detections (sorted by decreasing score) to its ground truth.

    Attributes:
        truth_index: int64 (D,), the ground-truth object each detection matched
            (a crowd region for an ignored one), -1 for none.
        ignored: bool (D,), detections matched only to a crowd region.
        truth_matched: bool (G,), ground-truth objects some detection matched.
    """

    def __init__(self, truth_index, ignored, truth_matched):
        self.truth_index, self.ignored, self.truth_matched = truth_index, ignored, truth_matched

    @property
    def true_positives(self):
        """bool (D,): detections matched to a (non-crowd) ground-truth object."""
        return (self.truth_index >= 0) & ~self.ignored


def match_image(ious, crowd, threshold, allowed=None):
    """Greedy matching of detections (rows of ``ious``, by decreasing score) to ground truth.

    Args:
        ious: float (D, G) from :func:`iou_matrix`.
        crowd: bool (G,), crowd regions.
        threshold (float): the least IoU of a match.
        allowed: bool (D, G) or None, the pairs that may match (e.g. same class);
            None allows every pair.

    Returns:
        Match
    """
    num_detections, num_truth = ious.shape
    allowed = np.ones_like(ious, dtype=bool) if allowed is None else allowed
    reachable = allowed & (ious >= threshold)
    truth_index = np.full(num_detections, -1, dtype=np.int64)
    ignored = np.zeros(num_detections, dtype=bool)
    taken = np.zeros(num_truth, dtype=bool)
    for d in range(num_detections):
        free = reachable[d] & ~crowd & ~taken
        if free.any():
            g = int(np.argmax(np.where(free, ious[d], -1.0)))
            truth_index[d], taken[g] = g, True
        elif (reachable[d] & crowd).any():
            truth_index[d] = int(np.argmax(np.where(reachable[d] & crowd, ious[d], -1.0)))
            ignored[d] = True
    return Match(truth_index, ignored, taken)
