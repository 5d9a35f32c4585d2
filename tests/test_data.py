"""Tests for d2backbones.data: synthetic shapes, user datasets, builtin checks."""

import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator

from d2backbones.data import (
    SYNTHETIC_CLASSES,
    check_dataset_available,
    generate_synthetic_shapes,
    num_classes_from_json,
    parse_dataset_spec,
    register_synthetic_shapes,
    register_user_dataset,
)
from d2backbones.data import synthetic
from d2backbones.data.builtin import register_builtin_datasets

IMAGE_SIZE = 128


@pytest.fixture
def catalogs(monkeypatch):
    """Private copies of detectron2's catalogs: registrations made by a test
    vanish after it, and names registered elsewhere do not get in the way."""
    datasets, metadata = dict(DatasetCatalog.data), dict(MetadataCatalog.data)
    for name in ("synthetic_shapes_train", "synthetic_shapes_val"):
        datasets.pop(name, None)
        metadata.pop(name, None)
    monkeypatch.setattr(DatasetCatalog, "data", datasets)
    monkeypatch.setattr(MetadataCatalog, "data", metadata)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A small generated split: (parsed COCO json, json path, image dir)."""
    root = tmp_path_factory.mktemp("datasets")
    json_path, image_dir = generate_synthetic_shapes(
        root, "train", num_images=30, image_size=IMAGE_SIZE, seed=0
    )
    with open(json_path) as f:
        return json.load(f), json_path, image_dir


def decode(segmentation, height, width):
    if isinstance(segmentation, list):
        rles = mask_util.frPyObjects(segmentation, height, width)
        return mask_util.decode(mask_util.merge(rles))
    return mask_util.decode(segmentation)


def masks_by_image(coco):
    masks = {image["id"]: [] for image in coco["images"]}
    for ann in coco["annotations"]:
        masks[ann["image_id"]].append(decode(ann["segmentation"], IMAGE_SIZE, IMAGE_SIZE))
    return masks


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# ---- synthetic shapes -------------------------------------------------------


def test_same_seed_gives_identical_files(tmp_path):
    outputs = [
        generate_synthetic_shapes(tmp_path / run, "val", 8, IMAGE_SIZE, seed=3)
        for run in ("a", "b")
    ]
    (json_a, images_a), (json_b, images_b) = outputs
    assert read_bytes(json_a) == read_bytes(json_b)
    names = sorted(os.listdir(images_a))
    assert names == sorted(os.listdir(images_b)) and len(names) == 8
    for name in names:
        assert read_bytes(os.path.join(images_a, name)) == read_bytes(os.path.join(images_b, name))


def test_different_seeds_give_different_data(tmp_path):
    (json_a, images_a), (json_b, images_b) = [
        generate_synthetic_shapes(tmp_path, split, 4, IMAGE_SIZE, seed)
        for split, seed in (("train", 0), ("val", 1))
    ]
    assert os.path.dirname(json_a) != os.path.dirname(json_b)
    for name in os.listdir(images_a):
        assert read_bytes(os.path.join(images_a, name)) != read_bytes(os.path.join(images_b, name))


def test_categories_and_classes_all_appear(split):
    coco, _, _ = split
    assert [c["name"] for c in coco["categories"]] == list(SYNTHETIC_CLASSES)
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(SYNTHETIC_CLASSES) + 1))
    assert {a["category_id"] for a in coco["annotations"]} == set(range(1, len(SYNTHETIC_CLASSES) + 1))


def test_images_have_one_to_six_objects_of_varied_size(split):
    coco, _, image_dir = split
    counts = np.bincount([a["image_id"] for a in coco["annotations"]])[1:]
    assert len(counts) == len(coco["images"]) and counts.min() >= 1 and counts.max() <= 6
    sides = [max(a["bbox"][2:]) / IMAGE_SIZE for a in coco["annotations"]]
    assert min(sides) < 0.2 and max(sides) > 0.45
    for image in coco["images"]:
        assert (image["width"], image["height"]) == (IMAGE_SIZE, IMAGE_SIZE)
        assert os.path.isfile(os.path.join(image_dir, image["file_name"]))


def test_masks_decode_with_tight_boxes_and_exact_areas(split):
    coco, _, _ = split
    kinds = set()
    for ann in coco["annotations"]:
        segmentation = ann["segmentation"]
        kinds.add(type(segmentation))
        if isinstance(segmentation, list):
            assert all(len(polygon) >= 6 and len(polygon) % 2 == 0 for polygon in segmentation)
        mask = decode(segmentation, IMAGE_SIZE, IMAGE_SIZE)
        ys, xs = np.nonzero(mask)
        tight_box = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert ann["bbox"] == [int(v) for v in tight_box]
        assert ann["area"] == len(xs) >= synthetic._MIN_VISIBLE_PIXELS
        assert ann["iscrowd"] == 0
    # Whole regions are polygons; regions split or holed by occlusion are RLE.
    assert kinds == {list, dict}


def test_polygons_reproduce_masks_exactly():
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, instances = synthetic.render_scene(rng, IMAGE_SIZE)
        for _, mask in instances:
            segmentation = synthetic.encode_segmentation(mask)
            np.testing.assert_array_equal(decode(segmentation, IMAGE_SIZE, IMAGE_SIZE), mask)


def test_masks_are_visible_regions_without_overlap(split):
    coco, _, _ = split
    for image_id, masks in masks_by_image(coco).items():
        coverage = np.sum(masks, axis=0)
        assert coverage.max() <= 1, f"image {image_id} has a pixel in two masks"


def test_second_call_reuses_cache(tmp_path):
    json_path, image_dir = generate_synthetic_shapes(tmp_path, "val", 3, IMAGE_SIZE, seed=1)
    first_image = os.path.join(image_dir, sorted(os.listdir(image_dir))[0])
    mtimes = (os.stat(json_path).st_mtime_ns, os.stat(first_image).st_mtime_ns)

    assert generate_synthetic_shapes(tmp_path, "val", 3, IMAGE_SIZE, seed=1) == (
        json_path,
        image_dir,
    )
    assert (os.stat(json_path).st_mtime_ns, os.stat(first_image).st_mtime_ns) == mtimes
    # Other parameters get their own directory rather than the cached one.
    other_json, _ = generate_synthetic_shapes(tmp_path, "val", 4, IMAGE_SIZE, seed=1)
    assert other_json != json_path


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "render_scene", fail)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_shapes(tmp_path, "val", 3, IMAGE_SIZE, seed=1)
    assert os.listdir(tmp_path / synthetic.DATASET_VERSION) == []

    monkeypatch.undo()
    json_path, _ = generate_synthetic_shapes(tmp_path, "val", 3, IMAGE_SIZE, seed=1)
    with open(json_path) as f:
        assert len(json.load(f)["images"]) == 3


def test_losing_a_generation_race_uses_the_winners_output(tmp_path, monkeypatch):
    write_split = synthetic._write_split
    winner = []

    def write_while_another_process_finishes(output_dir, *args):
        write_split(output_dir, *args)
        monkeypatch.setattr(synthetic, "_write_split", write_split)
        # The other "process" generates the same split and renames it first.
        winner.append(generate_synthetic_shapes(tmp_path, "val", 3, 64, 1))

    monkeypatch.setattr(synthetic, "_write_split", write_while_another_process_finishes)
    assert generate_synthetic_shapes(tmp_path, "val", 3, 64, 1) == winner[0]
    assert os.listdir(tmp_path / synthetic.DATASET_VERSION) == ["val_n3_64px_seed1"]


def test_register_synthetic_shapes_is_idempotent(tmp_path, catalogs):
    sizes = dict(num_train_images=4, num_val_images=3)
    names = register_synthetic_shapes(tmp_path, **sizes)
    assert register_synthetic_shapes(tmp_path, **sizes) == names
    assert names == ["synthetic_shapes_train", "synthetic_shapes_val"]

    metadata = MetadataCatalog.get("synthetic_shapes_val")
    assert metadata.thing_classes == list(SYNTHETIC_CLASSES)
    assert metadata.evaluator_type == "coco" and metadata.has_masks is True
    assert os.path.isfile(metadata.json_file) and os.path.isdir(metadata.image_root)

    records = DatasetCatalog.get("synthetic_shapes_val")
    assert len(records) == 3
    annotations = [a for r in records for a in r["annotations"]]
    assert annotations and all(a["segmentation"] for a in annotations)
    assert {a["category_id"] for a in annotations} <= set(range(len(SYNTHETIC_CLASSES)))


def test_builtin_registration_generates_each_split_on_first_use(tmp_path, catalogs, monkeypatch):
    """What ``import d2backbones`` registers: names and metadata at once, files when needed."""
    monkeypatch.setenv("D2BACKBONES_DATASETS", str(tmp_path))
    monkeypatch.setitem(synthetic.DEFAULT_SPLITS, "train", (4, 0))
    monkeypatch.setitem(synthetic.DEFAULT_SPLITS, "val", (3, 1))
    names = ["synthetic_shapes_train", "synthetic_shapes_val"]
    assert register_builtin_datasets() == names
    assert register_builtin_datasets() == []
    check_dataset_available("synthetic_shapes_train")
    metadata = MetadataCatalog.get("synthetic_shapes_val")
    assert metadata.thing_classes == list(SYNTHETIC_CLASSES) and metadata.has_masks is True
    assert os.listdir(tmp_path) == []

    # An evaluator built before any loader reads json_file: that generates val alone.
    COCOEvaluator("synthetic_shapes_val", distributed=False)
    assert os.listdir(tmp_path / synthetic.DATASET_VERSION) == ["val_n3_128px_seed1"]
    with open(metadata.json_file) as f:
        categories = json.load(f)["categories"]
    assert metadata.thing_dataset_id_to_contiguous_id == {c["id"]: i for i, c in enumerate(categories)}

    records = DatasetCatalog.get("synthetic_shapes_train")
    assert len(records) == 4 and len(DatasetCatalog.get("synthetic_shapes_train")) == 4
    assert {a["category_id"] for r in records for a in r["annotations"]} <= set(range(len(SYNTHETIC_CLASSES)))
    # The explicit registration of the same default splits is then a no-op.
    assert register_synthetic_shapes(num_train_images=4, num_val_images=3) == names


# ---- user datasets ----------------------------------------------------------


def write_coco(path, annotations, categories):
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}],
        "annotations": annotations,
        "categories": categories,
    }
    path.write_text(json.dumps(coco))
    return str(path)


@pytest.fixture
def box_only_dataset(tmp_path):
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0}
    ]
    # Ids neither contiguous nor sorted, as in real exports.
    categories = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    return write_coco(tmp_path / "boxes.json", annotations, categories), str(image_dir)


def test_parse_dataset_spec_splits_after_json(tmp_path):
    json_path = write_coco(tmp_path / "ann.json", [], [{"id": 1, "name": "a"}])
    image_dir = tmp_path / "imgs:v2"  # a ':' in the image path is fine
    image_dir.mkdir()
    assert parse_dataset_spec(f"mine={json_path}:{image_dir}") == (
        "mine",
        json_path,
        str(image_dir),
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mine", "has no '='"),
        ("={json}:{dir}", "empty NAME"),
        ("mine={dir}", "has no ':'"),
        ("mine={dir}/missing.json:{dir}", "annotations file not found"),
        ("mine={json}:{dir}/missing", "image directory not found"),
    ],
)
def test_parse_dataset_spec_errors_are_one_line(tmp_path, spec, message):
    json_path = write_coco(tmp_path / "ann.json", [], [{"id": 1, "name": "a"}])
    with pytest.raises(ValueError, match=message) as error:
        parse_dataset_spec(spec.format(json=json_path, dir=tmp_path))
    assert "\n" not in str(error.value)


def test_box_only_dataset_registers_and_loads(box_only_dataset, catalogs):
    json_path, image_dir = box_only_dataset
    register_user_dataset("boxes_only", json_path, image_dir)
    metadata = MetadataCatalog.get("boxes_only")
    assert metadata.has_masks is False
    assert metadata.thing_classes == ["cat", "dog"]  # ordered by category id
    assert metadata.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}
    assert num_classes_from_json(json_path) == 2

    (record,) = DatasetCatalog.get("boxes_only")
    assert record["file_name"] == os.path.join(image_dir, "a.jpg")
    (annotation,) = record["annotations"]
    assert annotation["category_id"] == 1 and annotation["bbox"] == [1, 2, 10, 8]
    assert "segmentation" not in annotation


def test_reregistering_a_name_needs_the_same_files(box_only_dataset, tmp_path, catalogs):
    json_path, image_dir = box_only_dataset
    register_user_dataset("mine", json_path, image_dir)
    register_user_dataset("mine", json_path, image_dir)
    other_json = write_coco(tmp_path / "other.json", [], [{"id": 1, "name": "a"}])
    with pytest.raises(ValueError, match="already registered"):
        register_user_dataset("mine", other_json, image_dir)


def test_malformed_json_error_names_the_file(tmp_path, catalogs):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json"):
        register_user_dataset("broken", str(broken), str(tmp_path))
    no_categories = write_coco(tmp_path / "no_categories.json", [], [])
    with pytest.raises(ValueError, match="no_categories.json.*categories"):
        num_classes_from_json(no_categories)


# ---- builtin checks ---------------------------------------------------------


def test_missing_builtin_dataset_names_detectron2_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    # detectron2 fixed the builtin root at import; from an empty working
    # directory a relative root ("datasets", the default) has nothing under it.
    monkeypatch.chdir(tmp_path)
    metadata = MetadataCatalog.get("coco_2017_val")
    if os.path.exists(metadata.json_file):
        pytest.skip("COCO is installed where detectron2 looks for it")
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_available("coco_2017_val")
    message = str(error.value)
    assert "\n" not in message
    assert f"DETECTRON2_DATASETS (currently '{tmp_path}'" in message
    assert "$DETECTRON2_DATASETS/coco/annotations/instances_val2017.json" in message
    assert "$DETECTRON2_DATASETS/coco/val2017/" in message


def test_present_builtin_dataset_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metadata = MetadataCatalog.get("coco_2017_val")
    if os.path.isabs(metadata.json_file):
        pytest.skip("DETECTRON2_DATASETS was absolute at import; cannot fake the files")
    os.makedirs(metadata.image_root)
    os.makedirs(os.path.dirname(metadata.json_file))
    open(metadata.json_file, "w").close()
    check_dataset_available("coco_2017_val")


def test_unregistered_name_suggests_how_to_register():
    with pytest.raises(KeyError) as error:
        check_dataset_available("coco_2017_vall")
    message = str(error.value)
    assert "\n" not in message
    assert "--dataset coco_2017_vall=ANN.json:IMAGE_DIR" in message
    assert "coco_2017_val," in message


def test_registered_user_dataset_needs_no_check(box_only_dataset, catalogs):
    register_user_dataset("mine", *box_only_dataset)
    check_dataset_available("mine")


@pytest.mark.parametrize(
    "config", ["common/models/mask_rcnn_vitdet.py", "common/models/cascade_mask_rcnn_fpn_hierarchical.py"]
)
def test_box_only_data_turns_every_mask_head_off(box_only_dataset, catalogs, config):
    from detectron2.config import LazyConfig, instantiate

    from d2backbones.engine import adapt_model_to_data

    register_user_dataset("boxes_only", *box_only_dataset)
    cfg = LazyConfig.load(os.path.join(os.path.dirname(__file__), "..", "configs", config))
    cfg.dataloader = LazyConfig.load(
        os.path.join(os.path.dirname(__file__), "..", "configs", "common", "data", "coco_lsj.py")
    ).dataloader
    adapt_model_to_data(cfg, ["boxes_only"], [])
    roi_heads = instantiate(cfg.model.roi_heads)
    assert roi_heads.num_classes == 2 and not roi_heads.mask_on
    assert cfg.dataloader.train.mapper.use_instance_mask is False
