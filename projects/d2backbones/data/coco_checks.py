"""Checking a COCO json before training on it, and cleaning what can be cleaned.

Two kinds of bad annotation:

* malformed: a field of the wrong type or shape (a bbox of 3 numbers, a
  category id that no category has). :func:`validate_coco` raises one line naming
  the file and the JSON path of the field, e.g.
  ``ann.json: $.annotations[7].bbox: expected [x, y, width, height] of finite numbers, got [1, 2, 'a', 4]``.
* well-formed but degenerate: boxes partly or wholly outside the image, boxes of
  zero area, polygons of fewer than 3 points. :func:`clean_dataset_dicts` clips or
  drops boxes and logs how many, so one bad box never becomes a NaN loss; the
  polygons go when the json becomes records (:mod:`.coco_records`).
"""
import logging
import math
import os
from itertools import chain, repeat

from detectron2.structures import BoxMode

__all__ = ["clean_dataset_dicts", "clip_box_to_image", "validate_coco"]

logger = logging.getLogger(__name__)

_NUMBER_TYPES = {int, float}
_ID_TYPES = {int, str}


class _Malformed(ValueError):
    def __init__(self, json_path, where, problem):
        super().__init__(f"{json_path}: {where}: {problem}")


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value):
    # Python ints are finite however large; isfinite would overflow converting them.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _is_id(value):
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_member(value, ids):
    try:
        return value in ids
    except TypeError:  # unhashable, e.g. a list: no id is one
        return False


def _repeated_ids_allowed(json_path):
    # COCO 2014's minival and valminusminival files repeat a few annotation ids;
    # detectron2's reader lets files named so pass, and so do we.
    return "minival" in os.path.basename(os.fspath(json_path))


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


def _raise_first_problem(coco, json_path):
    """Walk ``coco`` item by item and raise :class:`_Malformed` at the first bad field."""
    if not isinstance(coco, dict):
        raise _Malformed(json_path, "$", f"expected an object with images, annotations, categories, got {type(coco).__name__}")
    image_ids = set()
    for i, image in enumerate(_check_list(coco, "images", json_path)):
        where = f"$.images[{i}]"
        if not isinstance(image, dict):
            raise _Malformed(json_path, where, f"expected an object, got {_short(image)}")
        if not _is_id(image.get("id")):
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
    first_with_id = {}
    for i, annotation in enumerate(_check_list(coco, "annotations", json_path, required=False)):
        where = f"$.annotations[{i}]"
        if not isinstance(annotation, dict):
            raise _Malformed(json_path, where, f"expected an object, got {_short(annotation)}")
        if not _is_member(annotation.get("image_id"), image_ids):
            raise _Malformed(json_path, f"{where}.image_id", f"no image has id {_short(annotation.get('image_id'))}")
        if not _is_member(annotation.get("category_id"), category_ids):
            raise _Malformed(json_path, f"{where}.category_id", f"no category has id {_short(annotation.get('category_id'))}")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise _Malformed(json_path, f"{where}.bbox", f"expected [x, y, width, height] of finite numbers, got {_short(bbox)}")
        if annotation.get("iscrowd", 0) not in (0, 1) or isinstance(annotation.get("iscrowd"), bool):
            raise _Malformed(json_path, f"{where}.iscrowd", f"expected 0 or 1, got {_short(annotation.get('iscrowd'))}")
        if annotation.get("segmentation") is not None:
            _check_segmentation(annotation["segmentation"], f"{where}.segmentation", json_path)
        annotation_id = annotation.get("id")
        if not _is_id(annotation_id):
            raise _Malformed(json_path, f"{where}.id",
                             f"expected an integer id (the COCO evaluator looks annotations up by it), got {_short(annotation_id)}")
        if annotation_id in first_with_id and not _repeated_ids_allowed(json_path):
            raise _Malformed(json_path, f"{where}.id", f"id {_short(annotation_id)} is also the id of "
                             f"$.annotations[{first_with_id[annotation_id]}]; give each annotation its own id")
        first_with_id.setdefault(annotation_id, i)
        if annotation.get("ignore", 0) != 0:
            raise _Malformed(json_path, f"{where}.ignore",
                             "ignore regions are not supported; remove the annotation, or its 'ignore' field")


def _field(items, key, default=None):
    """``item.get(key, default)`` for each dict in ``items``, looped in C."""
    return list(map(dict.get, items, repeat(key), repeat(default)))


def _types(values):
    return set(map(type, values))


def _finite_numbers(rows):
    """Whether every item of every list in ``rows`` is a finite int or float (not a bool).

    Looped in C: the set of item types, then the sum, which is finite only when every
    item is (an inf or nan carries through). A sum that overflows says False of finite
    items too; the caller then looks item by item."""
    if not _types(chain.from_iterable(rows)) <= _NUMBER_TYPES:
        return False
    try:
        return math.isfinite(sum(chain.from_iterable(rows)))
    except OverflowError:
        return False


def _looks_valid(coco, json_path):
    """True only if :func:`_raise_first_problem` would find nothing.

    Each field is checked across all items at once, with exact types; False may be
    a false alarm (a subclass of list, a sum that overflows), so it means "walk the
    items", never "malformed". May raise TypeError (an unhashable id), which means
    the same."""
    if type(coco) is not dict:
        return False
    images, categories, annotations = coco.get("images"), coco.get("categories"), coco.get("annotations")
    annotations = [] if annotations is None else annotations
    if not (type(images) is list and type(categories) is list and type(annotations) is list):
        return False
    if not (_types(images) | _types(categories) | _types(annotations)) <= {dict}:
        return False

    image_ids, file_names = _field(images, "id"), _field(images, "file_name")
    if not (_types(image_ids) <= _ID_TYPES and _types(file_names) <= {str} and "" not in file_names):
        return False
    for side in ("width", "height"):
        sizes = _field(images, side)
        if not _types(sizes) <= {int} or (sizes and min(sizes) <= 0):
            return False
    category_ids = _field(categories, "id")
    if not (_types(category_ids) <= {int} and _types(_field(categories, "name")) <= {str}):
        return False

    if not set(_field(annotations, "image_id")) <= set(image_ids):
        return False
    if not set(_field(annotations, "category_id")) <= set(category_ids):
        return False
    boxes = _field(annotations, "bbox")
    if not (_types(boxes) <= {list} and set(map(len, boxes)) <= {4} and _finite_numbers(boxes)):
        return False
    crowd = _field(annotations, "iscrowd", 0)
    if not (_types(crowd) <= _NUMBER_TYPES and set(crowd) <= {0, 1}):
        return False
    annotation_ids = _field(annotations, "id")
    if not _types(annotation_ids) <= _ID_TYPES:
        return False
    if len(set(annotation_ids)) < len(annotation_ids) and not _repeated_ids_allowed(json_path):
        return False
    if not set(_field(annotations, "ignore", 0)) <= {0}:
        return False

    segmentations = [s for s in _field(annotations, "segmentation") if s is not None]
    polygon_lists = [s for s in segmentations if type(s) is list]
    rles = [s for s in segmentations if type(s) is dict]
    if len(polygon_lists) + len(rles) < len(segmentations):
        return False
    polygons = list(chain.from_iterable(polygon_lists))
    if not (_types(polygons) <= {list} and _finite_numbers(polygons)):
        return False
    try:
        for rle in rles:
            _check_segmentation(rle, "", json_path)
    except _Malformed:
        return False
    return True


def validate_coco(coco, json_path):
    """Raise ``ValueError`` naming ``json_path`` and the JSON path of the first malformed field.

    Checked: ``images`` (``id``, ``file_name``, positive ``width`` / ``height``),
    ``categories`` (``id``, ``name``), ``annotations`` (``image_id`` and
    ``category_id`` that exist, ``bbox`` of 4 finite numbers, ``iscrowd`` 0/1,
    ``segmentation`` as polygons or RLE, a unique ``id``, no ``ignore`` regions).
    Geometry is not judged here.

    A valid file is checked field by field across all items, in loops that run in C
    (a third of the time ``json.load`` takes on the file); only a file that fails
    is walked item by item, to name the first bad field.
    """
    try:
        if _looks_valid(coco, json_path):
            return
    except TypeError:  # an unhashable value where an id belongs
        pass
    _raise_first_problem(coco, json_path)


def clip_box_to_image(bbox, width, height):
    """``bbox`` (XYWH) clipped to a ``width`` x ``height`` image.

    Returns:
        ``bbox`` itself when it lies inside the image (its numbers untouched: clipping
        arithmetic would move them by rounding); a new clipped list when it crosses
        the border; None when nothing of it is inside (a width or height of 0 or less included).
    """
    x, y, w, h = bbox
    if x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height:
        return bbox
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def clean_dataset_dicts(dataset_dicts, name):
    """Clip boxes to their image and drop those with no area left (outside the image,
    zero or negative width / height), in place; log the counts.

    Images left without annotations are kept (detectron2's ``filter_empty`` decides).
    Polygons of fewer than 3 points were already dropped when the records were made.

    Returns:
        the same list.
    """
    clipped = dropped = 0
    for record in dataset_dicts:
        annotations = record.get("annotations")
        if not annotations:
            continue
        width, height = record["width"], record["height"]
        kept = []
        for annotation in annotations:
            if annotation.get("bbox_mode", BoxMode.XYWH_ABS) == BoxMode.XYWH_ABS:
                box = clip_box_to_image(annotation["bbox"], width, height)
                if box is None:
                    dropped += 1
                    continue
                if box is not annotation["bbox"]:
                    clipped += 1
                    annotation["bbox"] = box
            kept.append(annotation)
        if len(kept) < len(annotations):
            record["annotations"] = kept
    if clipped or dropped:
        logger.warning(
            "Dataset %s: clipped %d boxes to their image, dropped %d boxes with no area inside it.",
            name, clipped, dropped,
        )
    return dataset_dicts
