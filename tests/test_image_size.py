"""Images of any size, and ``dataloader.image_size`` as the one knob of the input side.

Every demo config resizes its images to fit in an ``image_size`` square (the embedded
128 px images pass through unchanged), and the COCO LSJ configs crop to it. One
override changes every size that follows from it; a side the model cannot take is
one line.
"""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli_error_line, dataset_flags, meta_device, read_metrics
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.data import transforms as T
from omegaconf import DictConfig, ListConfig
from PIL import Image, ImageDraw

from d2backbones.data import register_synthetic_shapes
from d2backbones.engine import cli
from d2backbones.engine.config import apply_override, load_config

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
DEMO_CONFIGS = sorted((CONFIG_ROOT / "demo").glob("*.py"))
DEMO_IDS = [path.stem for path in DEMO_CONFIGS]
# The configs with the knob: the demos, and each way the LSJ recipe is reached (ViTDet's
# Mask R-CNN, its cascade with ViT-H, its LVIS cascade with ViT-L, Swin in21k on COCO and
# LVIS). Loading every config would take a minute on 2 cores.
KNOB_CONFIGS = DEMO_CONFIGS + [
    CONFIG_ROOT / path
    for path in (
        "ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py",
        "ViTDet/COCO/cascade_mask_rcnn_vitdet_h_75ep.py",
        "ViTDet/LVIS/cascade_mask_rcnn_vitdet_l_100ep.py",
        "Swin/COCO/cascade_mask_rcnn_swin_b_in21k_50ep.py",
        "Swin/LVIS/cascade_mask_rcnn_swin_l_in21k_50ep.py",
    )
]
KNOB_IDS = [str(path.relative_to(CONFIG_ROOT)) for path in KNOB_CONFIGS]
# Config keys that hold an input side: each must follow the knob wherever it equals it.
SIZE_KEYS = {"img_size", "pretrain_img_size", "square_pad", "short_edge_length", "max_size",
             "target_height", "target_width", "crop_size"}
USER_SIZES = [(320, 320), (97, 211)]
# Stride of the token grid of the demo backbones that store a position embedding.
POS_EMBED_STRIDE = {"vitdet_tiny": 8, "vitdet_micro": 8, "vitdet_tiny_scale_jitter": 8, "mimdet_tiny": 16}


def _config(name):
    return str(CONFIG_ROOT / "demo" / f"{name}.py")


# ---- a user's box-only COCO data at a size the demos were not written for -------------
def write_box_only_coco(root, height, width, num_images=4):
    """``num_images`` (height, width) JPEGs with two filled rectangles each, and a
    box-only COCO json: returns (json path, image dir)."""
    rng = np.random.default_rng(height * 1000 + width)
    image_dir = root / "images"
    image_dir.mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        pixels = rng.integers(40, 90, size=(height, width, 3), dtype=np.uint8)
        picture = Image.fromarray(pixels)
        draw = ImageDraw.Draw(picture)
        for category_id, colour in ((1, (230, 60, 60)), (2, (60, 60, 230))):
            box_w, box_h = int(rng.integers(width // 5, width // 2)), int(rng.integers(height // 5, height // 2))
            x0, y0 = int(rng.integers(0, width - box_w)), int(rng.integers(0, height - box_h))
            draw.rectangle([x0, y0, x0 + box_w - 1, y0 + box_h - 1], fill=colour)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                 "bbox": [x0, y0, box_w, box_h], "area": box_w * box_h, "iscrowd": 0}
            )
        file_name = f"{image_id:03d}.jpg"
        picture.save(image_dir / file_name, quality=95)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
    categories = [{"id": 1, "name": "tree"}, {"id": 2, "name": "roof"}]
    json_path = root / "annotations.json"
    json_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(json_path), str(image_dir)


@pytest.fixture(scope="module")
def user_datasets(tmp_path_factory):
    """(height, width) -> (json, image_dir) of a 4-image box-only set of that size."""
    return {
        size: write_box_only_coco(tmp_path_factory.mktemp(f"user_{size[0]}x{size[1]}"), *size)
        for size in USER_SIZES
    }


def fitted_shape(height, width, side):
    """(h, w) of an image resized so that its long side is ``side``, aspect kept."""
    return T.ResizeShortestEdge.get_output_shape(height, width, side, side)


@pytest.mark.parametrize("size", USER_SIZES, ids=["320x320", "97x211"])
@pytest.mark.parametrize("config", DEMO_IDS)
def test_each_demo_config_trains_on_images_of_another_size(config, size, user_datasets, tmp_path):
    name = f"user_{size[0]}x{size[1]}"
    args = cli.build_parser().parse_args([
        "--config-file", _config(config),
        *dataset_flags(name, user_datasets[size]),
        f"dataloader.train.dataset.names={name}",
        f"dataloader.test.dataset.names={name}",
        f"train.output_dir={tmp_path}",
        "train.max_iter=3",
        "train.eval_period=0",
        "train.log_period=1",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        "model.roi_heads.batch_size_per_image=16",
    ])
    cfg = cli.setup(args)
    side = cfg.dataloader.image_size
    record = DatasetCatalog.get(name)[0]
    # The model sees the image fitted in its square, train and test alike.
    tested = instantiate(cfg.dataloader.test.mapper)(copy.deepcopy(record))["image"]
    assert tuple(tested.shape[1:]) == fitted_shape(*size, side)
    trained = instantiate(cfg.dataloader.train.mapper)(copy.deepcopy(record))["image"]
    assert max(trained.shape[1:]) <= side

    results = cli.main(args, cfg)

    losses = [r["total_loss"] for r in read_metrics(tmp_path) if "total_loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert set(results) == {"bbox"} and 0.0 <= results["bbox"]["AP"] <= 100.0


# ---- the embedded 128 px images go through exactly as before --------------------------
def flip_only_mappers():
    """The demo's mappers before the resize was added: flip only in training, none at test."""
    train = DatasetMapper(
        is_train=True, augmentations=[T.RandomFlip(horizontal=True)], image_format="RGB",
        use_instance_mask=True, instance_mask_format="bitmask",
    )
    return train, DatasetMapper(is_train=False, augmentations=[], image_format="RGB")


def _assert_same_sample(actual, expected):
    assert actual["image"].dtype == expected["image"].dtype
    assert torch.equal(actual["image"], expected["image"])
    if "instances" in expected:
        new, old = actual["instances"], expected["instances"]
        assert new.image_size == old.image_size
        assert torch.equal(new.gt_boxes.tensor, old.gt_boxes.tensor)
        assert torch.equal(new.gt_classes, old.gt_classes)
        assert torch.equal(new.gt_masks.tensor, old.gt_masks.tensor)


# The flip-only 128-px demos (the scale-jitter variant resizes on purpose).
FLIP_ONLY_DEMOS = [name for name in DEMO_IDS if name not in ("vitdet_micro", "vitdet_tiny_scale_jitter")]


@pytest.mark.parametrize("config", FLIP_ONLY_DEMOS)
def test_embedded_images_map_bit_for_bit_as_before(config):
    register_synthetic_shapes()
    records = DatasetCatalog.get("synthetic_shapes_train")[:6] + DatasetCatalog.get("synthetic_shapes_val")[:2]
    cfg = load_config(_config(config))
    assert cfg.dataloader.image_size == 128
    for split, old_mapper in zip(("train", "test"), flip_only_mappers()):
        new_mapper = instantiate(cfg.dataloader[split].mapper)
        # One random stream through each pipeline: the resize must draw nothing from it,
        # or every later flip would differ.
        np.random.seed(42)
        expected = [old_mapper(copy.deepcopy(r)) for r in records]
        old_state = np.random.get_state()[1].copy()
        np.random.seed(42)
        actual = [new_mapper(copy.deepcopy(r)) for r in records]
        assert np.array_equal(np.random.get_state()[1], old_state)
        for new, old in zip(actual, expected):
            _assert_same_sample(new, old)


# ---- one knob -------------------------------------------------------------------------
def _size_leaves(node, path=""):
    """{dotted path: value} of every input-side setting (SIZE_KEYS), interpolations resolved."""
    items = node.items() if isinstance(node, DictConfig) else enumerate(node)
    found = {}
    for key, value in items:
        dotted = f"{path}{key}"
        if isinstance(value, ListConfig) and key in SIZE_KEYS and all(isinstance(v, int) for v in value):
            found.update({f"{dotted}.{i}": v for i, v in enumerate(value)})
        elif isinstance(value, (DictConfig, ListConfig)):
            found.update(_size_leaves(value, dotted + "."))
        elif key in SIZE_KEYS and isinstance(value, int):
            found[dotted] = value
    return found


@pytest.mark.parametrize("path", KNOB_CONFIGS, ids=KNOB_IDS)
def test_the_knob_sets_every_input_side_of_the_config(path):
    default = load_config(str(path))
    side = default.dataloader.image_size
    tied = {key for key, value in _size_leaves(default).items() if value == side}
    assert any(".mapper." in key for key in tied), tied
    if "square_pad" in default.model.backbone:
        assert "model.backbone.square_pad" in tied
    new_side = 2 * side
    overridden = copy.deepcopy(default)
    apply_override(overridden, f"dataloader.image_size={new_side}")
    changed = _size_leaves(overridden)
    assert {key: changed[key] for key in tied} == {key: new_side for key in tied}
    assert side not in changed.values(), {k: v for k, v in changed.items() if v == side}


def _cell_anchor_sides(model):
    """Sorted sides (sqrt of area) of the cell anchors of every level."""
    anchors = torch.cat(list(model.proposal_generator.anchor_generator.cell_anchors))
    return torch.sort(((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])).sqrt()).values


def _pos_embed_tokens(model):
    """{state-dict key: token count} of every absolute position embedding."""
    return {k: v.shape[1] for k, v in model.state_dict().items() if k.endswith("pos_embed")}


@pytest.mark.parametrize("config", DEMO_IDS)
def test_image_size_256_changes_the_mapper_and_the_model(config):
    default_cfg = load_config(_config(config))
    cfg = load_config(_config(config), ["dataloader.image_size=256"])
    torch.manual_seed(0)
    default_model, model = instantiate(default_cfg.model), instantiate(cfg.model)

    # Mapper: a 320 x 320 image becomes 256 x 256, a 97 x 211 one 118 x 256.
    for height, width in USER_SIZES:
        image = np.zeros((height, width, 3), dtype=np.uint8)
        for split in ("train", "test"):
            augmentations = T.AugmentationList(instantiate(cfg.dataloader[split].mapper.augmentations))
            resized = T.AugInput(image)
            augmentations(resized)
            if split == "test":
                assert resized.image.shape[:2] == fitted_shape(height, width, 256)
            assert max(resized.image.shape[:2]) <= 256

    # Square padding, where the model has it, is the new side.
    default_side = default_cfg.dataloader.image_size
    if getattr(default_model.backbone, "padding_constraints", {}).get("square_size"):
        assert model.backbone.padding_constraints["square_size"] == 256
    # Anchors keep their share of the image.
    assert torch.allclose(_cell_anchor_sides(model), _cell_anchor_sides(default_model) * 256 / default_side)
    # Position embeddings (with or without a cls slot) are stored at the new token grid...
    default_tokens, tokens = _pos_embed_tokens(default_model), _pos_embed_tokens(model)
    assert bool(default_tokens) == (config in POS_EMBED_STRIDE)
    for key, count in default_tokens.items():
        stride = POS_EMBED_STRIDE[config]
        cls_slots = count - (default_side // stride) ** 2
        assert cls_slots in (0, 1) and tokens[key] == (256 // stride) ** 2 + cls_slots, key
    # ...and the global blocks' rel-pos tables span it.
    rel_pos = [v.shape[0] for k, v in model.state_dict().items() if k.endswith("rel_pos_h")]
    if rel_pos:
        assert max(rel_pos) == 2 * (256 // POS_EMBED_STRIDE[config]) - 1


@pytest.mark.parametrize("path", KNOB_CONFIGS, ids=KNOB_IDS)
def test_the_declared_multiple_is_the_backbones_size_divisibility(path):
    cfg = LazyConfig.load(str(path))
    with meta_device():
        backbone = instantiate(cfg.model.backbone)
    assert backbone.size_divisibility == cfg.dataloader.image_size_multiple


def test_lsj_knob_builds_a_vitdet_at_the_new_side():
    cfg = load_config(str(CONFIG_ROOT / "ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py"), ["dataloader.image_size=512"])
    with meta_device():
        backbone = instantiate(cfg.model.backbone)
    assert backbone.padding_constraints["square_size"] == 512
    assert max(v.shape[0] for k, v in backbone.state_dict().items() if k.endswith("rel_pos_h")) == 2 * 512 // 16 - 1
    crop = T.AugmentationList(instantiate(cfg.dataloader.train.mapper.augmentations))
    large = T.AugInput(np.zeros((900, 1200, 3), dtype=np.uint8))
    crop(large)
    assert max(large.image.shape[:2]) <= 512


# ---- a side the model cannot take -----------------------------------------------------
@pytest.mark.parametrize(
    "config, side, fix",
    [
        (_config("vitdet_tiny"), 100, "use dataloader.image_size=96 or dataloader.image_size=112"),
        (_config("mimdet_tiny"), 0, "use dataloader.image_size=16"),
        (str(CONFIG_ROOT / "ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py"), 1000,
         "use dataloader.image_size=992 or dataloader.image_size=1024"),
    ],
)
def test_a_side_the_model_cannot_take_is_one_line_naming_the_override(config, side, fix, capsys):
    line = cli_error_line(["--config-file", config, f"dataloader.image_size={side}"], capsys)
    assert line.startswith(f"error: dataloader.image_size={side} is not a positive multiple of ")
    assert line.endswith(fix)
