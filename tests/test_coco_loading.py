"""Loading a user's COCO json: parsed once, the same records as detectron2's reader, fast checks
that judge as the item-by-item walk does."""
import builtins
import gc
import json
import logging

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from d2backbones.data import coco_checks, register_user_dataset, validate_coco


@pytest.fixture
def catalogs(monkeypatch):
    """Private copies of detectron2's catalogs, so registrations vanish after each test."""
    monkeypatch.setattr(DatasetCatalog, "data", dict(DatasetCatalog.data))
    monkeypatch.setattr(MetadataCatalog, "data", dict(MetadataCatalog.data))


@pytest.fixture
def warnings_logged():
    """The package's warning messages, in a list (caught where detectron2's setup_logger
    stopped their propagation, too)."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    package_logger = logging.getLogger("d2backbones")
    package_logger.addHandler(handler)
    yield messages
    package_logger.removeHandler(handler)


def varied_coco():
    """Every case the records must carry over: unsorted image ids, an image without
    annotations, non-contiguous category ids, float boxes inside the image, a
    polygon of 2 points beside a good one, an instance with only bad polygons, an
    uncompressed crowd RLE, keypoints, extra fields."""
    images = [
        {"id": 30, "file_name": "c.jpg", "width": 40, "height": 30, "license": 1},
        {"id": 4, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 17, "file_name": "b.jpg", "width": 20, "height": 10},
    ]
    square = [1.5, 1.5, 9.25, 1.5, 9.25, 7.75, 1.5, 7.75]
    annotations = [
        {"id": 1, "image_id": 4, "category_id": 9, "bbox": [0.1, 0.2, 0.2, 0.1], "iscrowd": 0, "area": 0.02,
         "segmentation": [list(square), [1, 2, 3, 4]], "ignore": 0},
        {"id": 2, "image_id": 30, "category_id": 2, "bbox": [3.3, 4.4, 10.1, 7.7], "iscrowd": 0,
         "segmentation": [list(square)], "keypoints": [5, 6, 2, 7, 8, 1]},
        {"id": 3, "image_id": 4, "category_id": 2, "bbox": [2, 2, 5, 5], "iscrowd": 0, "segmentation": [[1, 2, 3, 4]]},
        {"id": 4, "image_id": 4, "category_id": 9, "bbox": [0, 0, 64, 48], "iscrowd": 1,
         "segmentation": {"size": [48, 64], "counts": [100, 300, 2672]}},
        {"id": 5, "image_id": 30, "category_id": 9, "bbox": [1.25, 2.5, 3.75, 5.0], "iscrowd": 0},
    ]
    categories = [{"id": 9, "name": "dog"}, {"id": 2, "name": "cat"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_json(tmp_path, coco, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(coco))
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    return str(path), str(image_dir)


def test_records_equal_detectron2_load_coco_json(tmp_path, catalogs, warnings_logged):
    json_path, image_dir = write_json(tmp_path, varied_coco())
    register_user_dataset("varied", json_path, image_dir)
    ours = DatasetCatalog.get("varied")
    assert ours == load_coco_json(json_path, image_dir, "detectron2_varied")
    assert [r["image_id"] for r in ours] == [4, 17, 30]
    # The float boxes lie inside their images: untouched, not "clipped" by rounding.
    assert not [m for m in warnings_logged if "clipped" in m]
    assert ours[0]["annotations"][0]["bbox"] == [0.1, 0.2, 0.2, 0.1]


def test_json_is_parsed_once_for_registration_and_first_get(tmp_path, catalogs, monkeypatch):
    json_path, image_dir = write_json(tmp_path, varied_coco())
    parses, opens = [], []
    real_decode, real_open = json.JSONDecoder.decode, builtins.open
    # Every parse, json.load's and json.loads' (pycocotools' too), goes through decode.
    monkeypatch.setattr(json.JSONDecoder, "decode", lambda *a, **k: parses.append(a) or real_decode(*a, **k))

    def counting_open(file, *args, **kwargs):
        if str(file) == json_path:
            opens.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    register_user_dataset("once", json_path, image_dir)
    first = DatasetCatalog.get("once")
    assert (len(parses), len(opens)) == (1, 1)
    # Later calls read the file again and hand out records of their own.
    first[0]["annotations"].clear()
    second = DatasetCatalog.get("once")
    assert (len(parses), len(opens)) == (2, 2)
    assert second == load_coco_json(json_path, image_dir, "detectron2_once")


def test_loading_leaves_the_cycle_collector_as_it_was(tmp_path, catalogs):
    json_path, image_dir = write_json(tmp_path, varied_coco())
    register_user_dataset("gc_on", json_path, image_dir)
    DatasetCatalog.get("gc_on")
    assert gc.isenabled()
    gc.disable()
    try:
        register_user_dataset("gc_off", json_path, image_dir)
        DatasetCatalog.get("gc_off")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_valid_file_skips_the_item_by_item_walk(monkeypatch):
    def walk(coco, json_path):
        raise AssertionError("walked a valid file item by item")

    monkeypatch.setattr(coco_checks, "_raise_first_problem", walk)
    validate_coco(varied_coco(), "ann.json")


def corrupted(change):
    coco = varied_coco()
    change(coco)
    return coco


# Values that pass a quick check by types or sums unless it is exact.
FAST_PATH_TRAPS = [
    (lambda c: c["annotations"][1]["segmentation"][0].__setitem__(3, True), "$.annotations[1].segmentation[0]"),
    (lambda c: c["annotations"][2]["segmentation"][0].__setitem__(0, float("nan")), "$.annotations[2].segmentation[0]"),
    (lambda c: c["annotations"][4]["bbox"].__setitem__(2, float("inf")), "$.annotations[4].bbox"),
    (lambda c: c["annotations"][3]["bbox"].__setitem__(0, False), "$.annotations[3].bbox"),
    (lambda c: c["annotations"][0].update(iscrowd=True), "$.annotations[0].iscrowd"),
    (lambda c: c["annotations"][0].update(image_id=[4]), "$.annotations[0].image_id"),
    (lambda c: c["images"][1].update(height=0), "$.images[1].height"),
    (lambda c: c["images"][2].update(file_name=""), "$.images[2].file_name"),
    (lambda c: c["annotations"][3].update(segmentation={"size": [48, 64], "counts": 5}), "$.annotations[3].segmentation.counts"),
    (lambda c: c["annotations"][2].pop("id"), "$.annotations[2].id"),
    (lambda c: c["annotations"][4].update(id=2), "$.annotations[4].id"),
    (lambda c: c["annotations"][1].update(ignore=1), "$.annotations[1].ignore"),
]


@pytest.mark.parametrize("change, field", FAST_PATH_TRAPS, ids=[field for _, field in FAST_PATH_TRAPS])
def test_malformed_fields_are_named_whatever_the_check_that_finds_them(change, field):
    with pytest.raises(ValueError) as error:
        validate_coco(corrupted(change), "ann.json")
    assert str(error.value).startswith(f"ann.json: {field}: "), str(error.value)
    assert "\n" not in str(error.value)


def test_duplicate_ids_name_the_first_holder_and_minival_files_may_repeat_them():
    coco = corrupted(lambda c: c["annotations"][4].update(id=2))
    with pytest.raises(ValueError, match=r"\$\.annotations\[4\]\.id: id 2 is also the id of \$\.annotations\[1\]"):
        validate_coco(coco, "ann.json")
    validate_coco(coco, "instances_minival2014.json")


def test_valid_numbers_whose_sum_overflows_pass():
    huge = 1e308
    coco = corrupted(lambda c: c["annotations"][1].update(segmentation=[[huge, huge, huge, 1.0, 2.0, 3.0]]))
    validate_coco(coco, "ann.json")
    coco = corrupted(lambda c: c["annotations"][1].update(segmentation=[[10**400, 1, 2, 3, 4, 5]]))
    validate_coco(coco, "ann.json")


def test_a_box_across_the_border_is_clipped_and_counted(tmp_path, catalogs, warnings_logged):
    coco = varied_coco()
    coco["annotations"][4]["bbox"] = [30.5, 20.0, 20.0, 20.0]  # image 30 is 40 x 30
    json_path, image_dir = write_json(tmp_path, coco)
    register_user_dataset("across", json_path, image_dir)
    records = DatasetCatalog.get("across")
    assert records[2]["annotations"][1]["bbox"] == [30.5, 20.0, 9.5, 10.0]
    assert [m for m in warnings_logged if "clipped" in m] == [
        "Dataset across: clipped 1 boxes to their image, dropped 0 boxes with no area inside it."
    ]
