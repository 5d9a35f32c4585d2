"""A user's own COCO-format data, registered from the command line.

``--dataset NAME=ANNOTATIONS.json:IMAGE_DIR`` is all it takes: class names,
the number of classes and whether masks exist are read from the json.
The json is parsed once: registration reads it for the class list and hands the
parse to the first ``DatasetCatalog.get``.
"""

import contextlib
import gc
import json
import os
import re

from detectron2.data import DatasetCatalog, MetadataCatalog

from .coco_checks import clean_dataset_dicts, validate_coco
from .coco_records import coco_to_dataset_dicts

__all__ = ["num_classes_from_json", "parse_dataset_spec", "register_user_dataset"]

_SPEC_FORM = "NAME=ANNOTATIONS.json:IMAGE_DIR"


def parse_dataset_spec(spec):
    """Split ``NAME=ANNOTATIONS.json:IMAGE_DIR`` and check that both paths exist.

    The name ends at the first ``=``. The annotations path ends at the first
    ``.json:`` (case-insensitive), so either path may contain ``:``; when the
    annotations file does not end in ``.json`` the split is at the last ``:``.
    ``~`` is expanded in both paths.

    Returns:
        tuple[str, str, str]: name, annotations json path, image directory.

    Raises:
        ValueError: with a one-line message naming what is wrong.
    """
    name, equals, paths = spec.partition("=")
    if not equals:
        raise ValueError(f"Dataset spec {spec!r} has no '=': expected {_SPEC_FORM}")
    name = name.strip()
    if not name:
        raise ValueError(f"Dataset spec {spec!r} has an empty NAME: expected {_SPEC_FORM}")
    boundary = re.search(r"\.json:", paths, flags=re.IGNORECASE)
    if boundary:
        json_path, image_dir = paths[: boundary.end() - 1], paths[boundary.end() :]
    else:
        json_path, colon, image_dir = paths.rpartition(":")
        if not colon:
            raise ValueError(
                f"Dataset spec {spec!r} has no ':' between annotations and images: "
                f"expected {_SPEC_FORM}"
            )
    json_path, image_dir = os.path.expanduser(json_path), os.path.expanduser(image_dir)
    if not os.path.isfile(json_path):
        raise ValueError(f"Dataset {name!r}: annotations file not found: {json_path!r}")
    if not os.path.isdir(image_dir):
        raise ValueError(f"Dataset {name!r}: image directory not found: {image_dir!r}")
    return name, json_path, image_dir


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Pause Python's cycle collector for a block that builds many containers and no cycles.

    Parsing a COCO json and making its records create a few million lists and dicts;
    the collector, triggered by each few hundred of them, would walk all those still
    alive again and again (a third of the parse time at COCO's size). Memory is freed
    by reference counting as usual meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_coco_json(json_path):
    """The parsed json, after checking the fields needed to register it."""
    try:
        with open(json_path) as f, _cyclic_gc_paused():
            coco = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read COCO annotations {json_path!r}: {e}") from e
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise ValueError(f"COCO annotations {json_path!r} have no 'images' list")
    categories = coco.get("categories")
    if not isinstance(categories, list) or not categories:
        raise ValueError(f"COCO annotations {json_path!r} have no 'categories'")
    if not all(isinstance(c, dict) and "id" in c and "name" in c for c in categories):
        raise ValueError(
            f"COCO annotations {json_path!r}: every category needs an 'id' and a 'name'"
        )
    if not isinstance(coco.get("annotations", []), list):
        raise ValueError(f"COCO annotations {json_path!r}: 'annotations' is not a list")
    with _cyclic_gc_paused():
        validate_coco(coco, json_path)
    return coco


def num_classes_from_json(json_path):
    """Number of categories in a COCO json, i.e. the detector's NUM_CLASSES."""
    return len(_read_coco_json(json_path)["categories"])


class _CocoDatasetFunction:
    """The ``DatasetCatalog`` function of a registered json: its cleaned records.

    The first call turns the parse made at registration into records, and lets go
    of it; later calls read the file again, so that each call returns fresh records
    (detectron2's callers may change them)."""

    def __init__(self, name, json_path, image_dir, parsed):
        self.name, self.json_path, self.image_dir = name, json_path, image_dir
        self._parsed = parsed

    def __call__(self):
        coco, self._parsed = self._parsed, None
        if coco is None:
            coco = _read_coco_json(self.json_path)
        with _cyclic_gc_paused():
            records = coco_to_dataset_dicts(coco, self.image_dir, self.json_path)
            return clean_dataset_dicts(records, self.name)


def _same_file(a, b):
    return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))


def register_user_dataset(name, json_path, image_dir):
    """Register a COCO-format dataset in detectron2's catalogs.

    Metadata: ``thing_classes`` (category names, ordered by id),
    ``thing_dataset_id_to_contiguous_id``, ``json_file``, ``image_root``,
    ``evaluator_type="coco"`` and ``has_masks`` (whether any annotation has a
    non-empty ``segmentation``; box-only data registers and loads as well).

    The json is parsed and checked here, once: the first ``DatasetCatalog.get``
    makes its records from this parse (and the parse is held until then).
    Registering the same name with the same files again is a no-op.

    Raises:
        ValueError: the name is taken by other files, or the json is malformed.
    """
    json_path, image_dir = os.fspath(json_path), os.fspath(image_dir)
    if name in DatasetCatalog.list():
        metadata = MetadataCatalog.get(name)
        registered = (metadata.get("json_file"), metadata.get("image_root"))
        if None not in registered and all(map(_same_file, registered, (json_path, image_dir))):
            return
        raise ValueError(
            f"Dataset {name!r} is already registered with json_file={registered[0]!r}, "
            f"image_root={registered[1]!r}; pick another name for {json_path!r}"
        )
    coco = _read_coco_json(json_path)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    has_masks = any(a.get("segmentation") for a in coco.get("annotations", []))

    DatasetCatalog.register(name, _CocoDatasetFunction(name, json_path, image_dir, coco))
    MetadataCatalog.get(name).set(
        thing_classes=[c["name"] for c in categories],
        # Set now rather than when the data is first loaded, so an evaluator
        # built before loading still maps contiguous ids back to the json's.
        thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
        json_file=json_path,
        image_root=image_dir,
        evaluator_type="coco",
        has_masks=has_masks,
    )
