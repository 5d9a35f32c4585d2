"""A parsed COCO json as detectron2's dataset dicts, without reading the file again.

The records are those of detectron2's ``load_coco_json(json_file, image_root,
dataset_name)``: one per image in increasing id order, with ``file_name``,
``height``, ``width``, ``image_id`` and ``annotations`` (``iscrowd``, ``bbox``,
``keypoints``, ``category_id`` where present, contiguous category ids,
``bbox_mode=XYWH_ABS``, polygons of fewer than 3 points dropped, uncompressed RLEs
compressed, keypoint coordinates shifted by half a pixel). Registration has parsed
the json already to read the class list, and handing its parse to this saves
parsing it again; detectron2's reader takes only a path.
"""
import logging
import os

import pycocotools.mask as mask_util
from detectron2.structures import BoxMode

__all__ = ["coco_to_dataset_dicts"]

logger = logging.getLogger(__name__)

# The annotation fields a record keeps as they are, in detectron2's order.
_KEPT_FIELDS = ("iscrowd", "bbox", "keypoints", "category_id")


def _polygons_or_rle(segmentation):
    """The segmentation a record keeps: an RLE (compressed if given uncompressed) or the
    polygons of at least 3 points; None when no polygon is left."""
    if isinstance(segmentation, dict):
        if isinstance(segmentation["counts"], list):
            return mask_util.frPyObjects(segmentation, *segmentation["size"])
        return segmentation
    polygons = [p for p in segmentation if len(p) >= 6 and len(p) % 2 == 0]
    return polygons or None


def _shift_keypoints(keypoints):
    """COCO keypoints are pixel indices; detectron2 wants pixel centres: +0.5 on x and y
    (not on each triple's visibility flag), in place as detectron2 does."""
    for k in range(len(keypoints)):
        if k % 3 != 2:
            keypoints[k] += 0.5
    return keypoints


def coco_to_dataset_dicts(coco, image_root, json_path="<json>"):
    """detectron2 records of a COCO dict that :func:`~.coco_checks.validate_coco` passed.

    Args:
        coco (dict): the parsed json. It is consumed: the records share its lists
            (boxes, polygons, keypoints, which are shifted in place), so drop it after.
        image_root (str): joined to each image's ``file_name``.
        json_path (str): named in the log.

    Returns:
        list[dict]: equal to ``load_coco_json``'s records for the same file.
    """
    category_ids = sorted(c["id"] for c in coco["categories"])
    contiguous = {category_id: i for i, category_id in enumerate(category_ids)}
    # A repeated image id keeps its last entry, as pycocotools' index does.
    images = {image["id"]: image for image in coco["images"]}
    per_image = {image_id: [] for image_id in images}
    for annotation in coco.get("annotations") or []:
        per_image[annotation["image_id"]].append(annotation)

    records = []
    without_segmentation = 0
    for image_id in sorted(images):
        image = images[image_id]
        objects = []
        for annotation in per_image[image_id]:
            obj = {key: annotation[key] for key in _KEPT_FIELDS if key in annotation}
            if annotation.get("segmentation"):
                segmentation = _polygons_or_rle(annotation["segmentation"])
                if segmentation is None:
                    without_segmentation += 1
                    continue
                obj["segmentation"] = segmentation
            if annotation.get("keypoints"):
                obj["keypoints"] = _shift_keypoints(annotation["keypoints"])
            obj["bbox_mode"] = BoxMode.XYWH_ABS
            obj["category_id"] = contiguous[annotation["category_id"]]
            objects.append(obj)
        records.append({
            "file_name": os.path.join(image_root, image["file_name"]),
            "height": image["height"],
            "width": image["width"],
            "image_id": image_id,
            "annotations": objects,
        })
    logger.info("Loaded %d images in COCO format from %s", len(records), json_path)
    if without_segmentation:
        logger.warning(
            "%s: dropped %d instances whose polygons all have fewer than 3 points.", json_path, without_segmentation
        )
    return records
