"""Checking a COCO json before training on it, and cleaning what can be cleaned.

Two kinds of bad annotation:

* malformed: a field of the wrong type or shape (a bbox of 3 numbers, a
  category id that no category has). :func:`validate_coco` raises one line naming
  the file and the JSON path of the field, e.g.
  ``ann.json: $.annotations[7].bbox: expected [x, y, width, height] of finite numbers, got [1, 2, 'a', 4]``.
* well-formed but degenerate: boxes partly or wholly outside the image, boxes of
  zero area, polygons of fewer than 3 points. :func:`clean_dataset_dicts` clips or
  drops them and logs how many, so one bad box never becomes a NaN loss.
"""
import logging
import math

from detectron2.structures import BoxMode

__all__ = ["clean_dataset_dicts", "validate_coco"]

logger = logging.getLogger(__name__)


class _Malformed(ValueError):
    def __init__(self, json_path, where, problem):
        super().__init__(f"{json_path}: {where}: {problem}")


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_list(coco, key, json_path, required=True):
    value = coco.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _Malformed(json_path, f"$.{key}", f"expected a list, got {_short(value)}")
    return value


def _check_segmentation(segmentation, where, json_path):
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
            raise _Malformed(json_path, f"{where}.size", f"expected [height, width] of an RLE, got {_short(size)}")
        if not isinstance(segmentation.get("counts"), (str, list)):
            raise _Malformed(json_path, f"{where}.counts", f"expected an RLE string or list, got {_short(segmentation.get('counts'))}")
        return
    if not isinstance(segmentation, list):
        raise _Malformed(json_path, where, f"expected a list of polygons or an RLE dict, got {_short(segmentation)}")
    for k, polygon in enumerate(segmentation):
        if not isinstance(polygon, list) or not all(_is_number(c) for c in polygon):
            raise _Malformed(json_path, f"{where}[{k}]", f"expected a polygon [x1, y1, x2, y2, ...], got {_short(polygon)}")


def validate_coco(coco, json_path):
    """Raise ``ValueError`` naming ``json_path`` and the JSON path of the first malformed field.

    Checked: ``images`` (``id``, ``file_name``, positive ``width`` / ``height``),
    ``categories`` (``id``, ``name``), ``annotations`` (``image_id`` and
    ``category_id`` that exist, ``bbox`` of 4 finite numbers, ``iscrowd`` 0/1,
    ``segmentation`` as polygons or RLE). Geometry is not judged here.
    """
    if not isinstance(coco, dict):
        raise _Malformed(json_path, "$", f"expected an object with images, annotations, categories, got {type(coco).__name__}")
    image_ids = set()
    for i, image in enumerate(_check_list(coco, "images", json_path)):
        where = f"$.images[{i}]"
        if not isinstance(image, dict):
            raise _Malformed(json_path, where, f"expected an object, got {_short(image)}")
        if not isinstance(image.get("id"), (int, str)) or isinstance(image.get("id"), bool):
            raise _Malformed(json_path, f"{where}.id", f"expected an integer id, got {_short(image.get('id'))}")
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            raise _Malformed(json_path, f"{where}.file_name", f"expected a file name, got {_short(image.get('file_name'))}")
        for side in ("width", "height"):
            if not isinstance(image.get(side), int) or isinstance(image.get(side), bool) or image[side] <= 0:
                raise _Malformed(json_path, f"{where}.{side}", f"expected a positive integer, got {_short(image.get(side))}")
        image_ids.add(image["id"])
    category_ids = set()
    for i, category in enumerate(_check_list(coco, "categories", json_path)):
        where = f"$.categories[{i}]"
        if not isinstance(category, dict) or not isinstance(category.get("id"), int) or isinstance(category.get("id"), bool):
            raise _Malformed(json_path, f"{where}.id", f"expected an integer id, got {_short(category)}")
        if not isinstance(category.get("name"), str):
            raise _Malformed(json_path, f"{where}.name", f"expected a name, got {_short(category.get('name'))}")
        category_ids.add(category["id"])
    for i, annotation in enumerate(_check_list(coco, "annotations", json_path, required=False)):
        where = f"$.annotations[{i}]"
        if not isinstance(annotation, dict):
            raise _Malformed(json_path, where, f"expected an object, got {_short(annotation)}")
        if annotation.get("image_id") not in image_ids:
            raise _Malformed(json_path, f"{where}.image_id", f"no image has id {_short(annotation.get('image_id'))}")
        if annotation.get("category_id") not in category_ids:
            raise _Malformed(json_path, f"{where}.category_id", f"no category has id {_short(annotation.get('category_id'))}")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise _Malformed(json_path, f"{where}.bbox", f"expected [x, y, width, height] of finite numbers, got {_short(bbox)}")
        if annotation.get("iscrowd", 0) not in (0, 1) or isinstance(annotation.get("iscrowd"), bool):
            raise _Malformed(json_path, f"{where}.iscrowd", f"expected 0 or 1, got {_short(annotation.get('iscrowd'))}")
        if annotation.get("segmentation") is not None:
            _check_segmentation(annotation["segmentation"], f"{where}.segmentation", json_path)


def _clipped_xywh(bbox, width, height):
    """``bbox`` (XYWH) clipped to the image; None when nothing of it is left."""
    x0, y0 = max(bbox[0], 0.0), max(bbox[1], 0.0)
    x1, y1 = min(bbox[0] + bbox[2], width), min(bbox[1] + bbox[3], height)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def clean_dataset_dicts(dataset_dicts, name):
    """Clip boxes to their image and drop those with no area left (outside the image,
    zero or negative width / height), in place; log the counts.

    Images left without annotations are kept (detectron2's ``filter_empty`` decides).
    Polygons of fewer than 3 points were already dropped by ``load_coco_json``.

    Returns:
        the same list.
    """
    clipped = dropped = 0
    for record in dataset_dicts:
        kept = []
        for annotation in record.get("annotations", []):
            if annotation.get("bbox_mode", BoxMode.XYWH_ABS) != BoxMode.XYWH_ABS:
                kept.append(annotation)
                continue
            box = _clipped_xywh(annotation["bbox"], record["width"], record["height"])
            if box is None:
                dropped += 1
                continue
            if box != list(annotation["bbox"]):
                clipped += 1
                annotation["bbox"] = box
            kept.append(annotation)
        if "annotations" in record:
            record["annotations"] = kept
    if clipped or dropped:
        logger.warning(
            "Dataset %s: clipped %d boxes to their image, dropped %d boxes with no area inside it.",
            name, clipped, dropped,
        )
    return dataset_dicts
