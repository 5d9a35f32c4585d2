"""Images drawn side by side: ground truth on the left, the model's detections on the right."""
import matplotlib
import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data.detection_utils import read_image
from detectron2.structures import Boxes, BoxMode, Instances

from ..inference.outputs import draw_instances

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["draw_image_pairs", "objects_as_instances"]


def objects_as_instances(objects, height, width, with_scores):
    """:class:`~.records.Objects` as the ``Instances`` that ``draw_instances`` draws:
    ``pred_boxes`` (XYXY), ``pred_classes``, ``scores`` when ``with_scores``, and
    ``pred_masks`` (bool, N x H x W) when the objects have masks."""
    instances = Instances((height, width))
    boxes = BoxMode.convert(torch.as_tensor(objects.boxes, dtype=torch.float32), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    instances.pred_boxes = Boxes(boxes)
    instances.pred_classes = torch.as_tensor(objects.classes, dtype=torch.int64)
    if with_scores:
        instances.scores = torch.as_tensor(objects.scores, dtype=torch.float32)
    if objects.masks is not None and len(objects):
        instances.pred_masks = torch.as_tensor(mask_util.decode(objects.masks), dtype=torch.bool).permute(2, 0, 1)
    return instances


def _panels(image, metadata, score_threshold, scale):
    rgb = read_image(image.file_name, format="RGB")
    truth = objects_as_instances(image.truth, image.height, image.width, with_scores=False)
    confident = image.detections.subset(image.detections.scores >= score_threshold).by_score()
    detections = objects_as_instances(confident, image.height, image.width, with_scores=True)
    return draw_instances(rgb, truth, metadata, scale), draw_instances(rgb, detections, metadata, scale)


def draw_image_pairs(images, scores, metadata, png_path, score_threshold=0.5, scale=2.0, title=None):
    """One row per :class:`~.image_scores.ImageScore` of ``scores``: its image's ground
    truth (left) and its detections scoring at least ``score_threshold`` (right),
    captioned with the image's counts. ``images`` is the full ImageResult list."""
    figure, axes = plt.subplots(len(scores), 2, figsize=(6.4, 3.3 * len(scores)), squeeze=False)
    for row, score in zip(axes, scores):
        image = images[score.index]
        for axis, panel in zip(row, _panels(image, metadata, score_threshold, scale)):
            axis.imshow(np.asarray(panel))
            axis.axis("off")
        row[0].set_title(f"image {image.image_id}: ground truth ({int((~image.truth.crowd).sum())})", fontsize=9)
        row[1].set_title(
            f"score >= {score_threshold:g}: F1 {score.f1:.2f} "
            f"(TP {score.true_positives}, FP {score.false_positives}, missed {score.missed})",
            fontsize=9,
        )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png_path, dpi=80)
    plt.close(figure)
    return png_path
