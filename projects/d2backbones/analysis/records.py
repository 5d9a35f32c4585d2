"""A results file and its dataset, image by image, in one form for every analysis.

A detectron2 ``COCOEvaluator`` writes ``coco_instances_results.json``: COCO result
records (``image_id``, the dataset's own ``category_id``, ``bbox`` as XYWH,
``score``, ``segmentation`` as RLE when the model predicts masks). The ground truth
comes from the registered dataset's records. Both become :class:`Objects`, the
analyses' one input form: XYWH boxes and COCO RLE masks, as pycocotools' IoU takes
them, and contiguous class ids, as the dataset records and ``thing_classes`` have.
"""
import json
from dataclasses import dataclass, field

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import BoxMode

__all__ = ["TASKS", "ImageResult", "Objects", "pair_results_with_dataset", "read_results", "truth_objects"]

TASKS = ("bbox", "segm")


@dataclass
class Objects:
    """The objects of one image, ground truth or detections.

    Attributes:
        boxes: float64 (N, 4), XYWH in absolute pixels.
        classes: int64 (N,), contiguous class ids (indices into ``thing_classes``).
        scores: float64 (N,); 1 for ground truth.
        crowd: bool (N,); COCO's ``iscrowd`` regions, matched but never counted.
            All False for detections.
        masks: N COCO RLE dicts, or None when the objects have no masks.
    """

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    crowd: np.ndarray
    masks: list = None

    def __len__(self):
        return len(self.classes)

    def regions(self, task):
        """What IoU is measured on for ``task``: the boxes (``bbox``) or the masks (``segm``)."""
        return self.boxes if task == "bbox" else self.masks

    def subset(self, keep):
        """The objects at ``keep`` (a bool mask or an index array), in that order."""
        keep = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        masks = None if self.masks is None else [self.masks[i] for i in keep]
        return Objects(self.boxes[keep], self.classes[keep], self.scores[keep], self.crowd[keep], masks)

    def by_score(self, limit=None):
        """The objects sorted by decreasing score, the first ``limit`` of them when given;
        ties keep their order (COCO's stable sort)."""
        return self.subset(np.argsort(-self.scores, kind="mergesort")[:limit])


def _objects(boxes, classes, scores, crowd, masks):
    return Objects(
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(classes, dtype=np.int64),
        np.asarray(scores, dtype=np.float64),
        np.asarray(crowd, dtype=bool),
        masks,
    )


@dataclass
class ImageResult:
    """One image of the dataset with its ground truth and the detections made on it."""

    image_id: int
    file_name: str
    height: int
    width: int
    truth: Objects
    detections: Objects = field(default=None)


def _segmentation_rle(segmentation, height, width):
    """A dataset record's segmentation (polygons or RLE, compressed or not) as one RLE."""
    if isinstance(segmentation, dict):
        if isinstance(segmentation["counts"], list):
            return mask_util.frPyObjects(segmentation, height, width)
        return segmentation
    return mask_util.merge(mask_util.frPyObjects(segmentation, height, width))


def truth_objects(record, with_masks):
    """The ground truth of a detectron2 dataset record (``annotations`` with any ``bbox_mode``).

    With ``with_masks``, every annotation needs a ``segmentation``."""
    height, width = record["height"], record["width"]
    annotations = record.get("annotations", [])
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYWH_ABS) for a in annotations]
    masks = None
    if with_masks:
        missing = [a for a in annotations if not a.get("segmentation")]
        if missing:
            raise ValueError(
                f"Image {record['image_id']} has {len(missing)} annotations without a segmentation: "
                "mask analysis needs masks on every object; use --task bbox"
            )
        masks = [_segmentation_rle(a["segmentation"], height, width) for a in annotations]
    return _objects(
        boxes,
        [a["category_id"] for a in annotations],
        np.ones(len(annotations)),
        [bool(a.get("iscrowd", 0)) for a in annotations],
        masks,
    )


def read_results(path):
    """The records of a COCO results json (a list of dicts), checked for the fields used."""
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read results {path!r}: {error}") from error
    if not isinstance(results, list):
        raise ValueError(f"Results {path!r} are not a list of COCO result records (coco_instances_results.json)")
    for record in results:
        if not isinstance(record, dict) or not {"image_id", "category_id", "bbox", "score"} <= record.keys():
            raise ValueError(
                f"Results {path!r}: every record needs image_id, category_id, bbox and score (got {record!r:.120})"
            )
    return results


def _detection_objects(results, to_contiguous, with_masks):
    masks = [r["segmentation"] for r in results] if with_masks else None
    return _objects(
        [r["bbox"] for r in results],
        [to_contiguous[r["category_id"]] for r in results],
        [r["score"] for r in results],
        np.zeros(len(results), dtype=bool),
        masks,
    )


def pair_results_with_dataset(results, dataset_dicts, metadata, task="bbox"):
    """Group result records by image and pair them with the dataset's ground truth.

    Args:
        results (list[dict]): from :func:`read_results`.
        dataset_dicts (list[dict]): the records of the dataset evaluated.
        metadata: its ``MetadataCatalog`` entry; ``thing_dataset_id_to_contiguous_id``
            maps the results' category ids (identity when absent).
        task (str): ``bbox`` or ``segm``; ``segm`` reads masks on both sides.

    Returns:
        list[ImageResult]: one per dataset image, in the dataset's order; an image
        without results has no detections.

    Raises:
        ValueError: the results name images or categories the dataset lacks, or
            lack the masks ``segm`` needs.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: pass one of {', '.join(TASKS)}")
    with_masks = task == "segm"
    num_classes = len(metadata.get("thing_classes", []))
    to_contiguous = metadata.get("thing_dataset_id_to_contiguous_id", None) or {i: i for i in range(num_classes)}
    unknown = sorted({r["category_id"] for r in results} - set(to_contiguous))
    if unknown:
        raise ValueError(
            f"Results have category ids {unknown[:5]} that dataset {metadata.name!r} does not define: "
            "pass the dataset the results were made on"
        )
    if with_masks and any("segmentation" not in r for r in results):
        raise ValueError("Results have no segmentation (the model predicts no masks): use --task bbox")
    by_image = {}
    for record in results:
        by_image.setdefault(record["image_id"], []).append(record)
    dataset_ids = {d["image_id"] for d in dataset_dicts}
    foreign = sorted(set(by_image) - dataset_ids)
    if foreign:
        raise ValueError(
            f"{len(foreign)} of the {len(by_image)} images in the results are not in dataset {metadata.name!r} "
            f"(e.g. image_id {foreign[0]}): pass the dataset the results were made on (dataloader.test.dataset.names)"
        )
    return [
        ImageResult(
            d["image_id"], d["file_name"], d["height"], d["width"],
            truth_objects(d, with_masks),
            _detection_objects(by_image.get(d["image_id"], []), to_contiguous, with_masks),
        )
        for d in dataset_dicts
    ]
