"""How far an exported detector is from the eager one: detections paired, differences measured."""
import logging
import math

import torch

from .runtime import raw_instances
from .tracing import detections, output_fields

__all__ = ["CHECK_TOLERANCES", "check_export", "compare_detections", "within_tolerance"]

logger = logging.getLogger("d2backbones")

# Largest differences the export check accepts without a warning. Measured on the demo
# models: TorchScript is exact; onnxruntime is within 2e-5 px, 1e-7 in score and mask.
CHECK_TOLERANCES = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3}


def compare_detections(expected, actual):
    """Largest differences between two sets of detections of one image.

    Each expected detection is paired with the unpaired actual one of its class nearest
    in box and score, so that order does not count: a traced graph sorts detections of
    equal score in another order (torch's CPU sort is not stable).

    Args:
        expected, actual (Instances): ``pred_boxes``, ``scores``, ``pred_classes`` and
            optionally ``pred_masks`` (probabilities, or pasted 0/1 masks).

    Returns:
        dict: ``expected`` and ``actual`` counts, ``unpaired`` (expected detections with
        no actual one of their class), and the largest absolute difference of the pairs
        in ``boxes`` (pixels), ``scores`` and ``masks`` (mask values; None without masks).
    """
    expected_boxes, actual_boxes = expected.pred_boxes.tensor.float(), actual.pred_boxes.tensor.float()
    cost = (expected_boxes[:, None] - actual_boxes[None]).abs().amax(-1)
    cost = cost + (expected.scores[:, None].float() - actual.scores[None].float()).abs()
    cost[expected.pred_classes[:, None] != actual.pred_classes[None]] = math.inf
    pairs = []
    for row in range(len(expected)):
        column = int(cost[row].argmin()) if cost.shape[1] else 0
        if cost.shape[1] and math.isfinite(cost[row, column]):
            pairs.append((row, column))
            cost[:, column] = math.inf
    rows = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    columns = torch.tensor([p[1] for p in pairs], dtype=torch.long)

    def largest(a, b):
        return float((a[rows].float() - b[columns].float()).abs().max()) if pairs else 0.0

    has_masks = expected.has("pred_masks") and actual.has("pred_masks")
    return {
        "expected": len(expected),
        "actual": len(actual),
        "unpaired": len(expected) - len(pairs),
        "boxes": largest(expected_boxes, actual_boxes),
        "scores": largest(expected.scores, actual.scores),
        "masks": largest(expected.pred_masks, actual.pred_masks) if has_masks else None,
    }


def within_tolerance(difference, tolerances=CHECK_TOLERANCES):
    """Whether a :func:`compare_detections` result has the same detections within ``tolerances``."""
    if difference["unpaired"] or difference["expected"] != difference["actual"]:
        return False
    return all(difference[key] is None or difference[key] <= limit for key, limit in tolerances.items())


def check_sizes(image):
    """The sample and a crop of it to about 3/4 of each side: a second input size,
    which shows whether the graph generalises beyond the traced shape."""
    height, width = image.shape[-2:]
    return [image, image[:, : max(16, height * 3 // 4), : max(16, width * 3 // 4)].contiguous()]


@torch.no_grad()
def check_export(model, exported, image):
    """Compare the exported graph with the eager model on ``image`` and on a crop of it.

    Args:
        model: the eager detector (eval mode).
        exported (ExportedDetector): the same model, exported.
        image (Tensor): (3, H, W) the sample input.

    Returns:
        list[dict]: per input, its ``size`` and the :func:`compare_detections` result of
        the raw outputs (input pixels, mask probabilities). A result outside
        :data:`CHECK_TOLERANCES` is logged as a warning.
    """
    fields = output_fields(model)
    results = []
    for inputs in check_sizes(image):
        size = tuple(inputs.shape[-2:])
        expected = raw_instances(detections(model, inputs, fields), fields, size)
        actual = raw_instances(exported.run(inputs), fields, size)
        difference = {"size": list(size), **compare_detections(expected, actual)}
        if not (difference["expected"] or difference["actual"]):
            logger.warning("No detections on the %dx%d check input, so the check compared none: pass "
                           "--sample-image with objects in it", size[0], size[1])
        elif not within_tolerance(difference):
            logger.warning("The %s export differs from the eager model on a %dx%d input: %s",
                           exported.export_format, size[0], size[1], difference)
        results.append(difference)
    return results
