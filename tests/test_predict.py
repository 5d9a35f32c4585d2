"""Predictor and tools/predict.py: preprocessing exactly as evaluation, and the outputs."""
import json

import numpy as np
import pytest
import torch
from conftest import DEMO_CONFIG, load_tool
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import Boxes, Instances
from PIL import Image

from d2backbones.inference import Predictor, draw_instances
from d2backbones.reports import draw_predictions

# A random detector keeps 100 boxes per image from 300 proposals; drawing their masks
# and running the heads on them would dominate the test.
FEW_DETECTIONS = ["model.roi_heads.box_predictor.test_topk_per_image=3", "model.proposal_generator.post_nms_topk=[300,20]"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A randomly initialised demo detector saved as a training checkpoint."""
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(DEMO_CONFIG).model)
    directory = tmp_path_factory.mktemp("weights")
    DetectionCheckpointer(model, str(directory)).save("model_random")
    return str(directory / "model_random.pth")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two RGB images of different sizes, below the demo's 128-px square."""
    directory = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for name, (height, width) in (("first", (96, 120)), ("second", (128, 80))):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        pixels[20:60, 20:60] = (250, 30, 30)
        path = directory / f"{name}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def resizing_config():
    """The demo config with a test-time resize, as the COCO configs have."""
    cfg = LazyConfig.load(DEMO_CONFIG)
    cfg.dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=64, max_size=100)]
    return LazyConfig.apply_overrides(cfg, FEW_DETECTIONS)


@pytest.fixture(scope="module")
def predictor(resizing_config, weights):
    return Predictor.from_config(resizing_config, weights)


def test_predictor_matches_the_evaluation_path(predictor, resizing_config, images):
    """Same test resize, colour order and padding as the config's test loader."""
    mapper = instantiate(resizing_config.dataloader.test.mapper)
    record = mapper({"file_name": images[0], "image_id": 0, "height": 96, "width": 120})
    with torch.no_grad():
        expected = predictor.model([record])[0]["instances"]
    rgb = np.asarray(Image.open(images[0]).convert("RGB"))
    results = predictor.predict_batch([images[0], rgb[:, :, ::-1]]) + [predictor(rgb, input_format="RGB")]
    for result in results:
        assert result.image_size == (96, 120)
        assert len(result) == len(expected) > 0
        assert torch.allclose(result.pred_boxes.tensor, expected.pred_boxes.tensor, atol=1e-4)
        assert torch.equal(result.pred_classes, expected.pred_classes)


def test_predictor_names_the_fix_for_images_larger_than_the_square(predictor):
    without_resize = Predictor(predictor.model, [], predictor.image_format)
    with pytest.raises(ValueError, match="--max-size 128"):
        without_resize(np.zeros((300, 200, 3), dtype=np.uint8))
    shrinking = Predictor(predictor.model, [T.ResizeShortestEdge(128, max_size=128)], predictor.image_format)
    assert shrinking(np.zeros((300, 200, 3), dtype=np.uint8)).image_size == (300, 200)


def test_predict_tool_writes_pngs_and_coco_json(weights, images, tmp_path):
    output = tmp_path / "out"
    load_tool("predict").main(
        ["--config-file", DEMO_CONFIG, "--weights", weights, "--input", images[0], images[1].replace("second", "sec*"),
         "--output", str(output), "--confidence-threshold", "0.0", "--batch-size", "2", "--max-size", "100", *FEW_DETECTIONS]
    )
    for name, image_path in zip(("first", "second"), images):
        drawn = Image.open(output / f"{name}.png")
        assert drawn.size == Image.open(image_path).size
    records = json.loads((output / "detections.json").read_text())
    assert records and {r["image_id"] for r in records} == {0, 1}
    for record in records:
        assert set(record) >= {"image_id", "category_id", "bbox", "score", "segmentation", "file_name", "category_name"}
        assert len(record["bbox"]) == 4 and 0.0 <= record["score"] <= 1.0
        assert record["segmentation"]["size"] == ([96, 120] if record["image_id"] == 0 else [128, 80])
        assert record["file_name"] == images[record["image_id"]]


class FixedDetections(torch.nn.Module):
    """A model that finds one confident and one doubtful box in every image."""

    def forward(self, inputs):
        outputs = []
        for item in inputs:
            instances = Instances((item["height"], item["width"]))
            instances.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0], [5.0, 30.0, 70.0, 90.0]]))
            instances.scores = torch.tensor([0.9, 0.1])
            instances.pred_classes = torch.tensor([0, 1])
            outputs.append({"instances": instances})
        return outputs


def test_demo_grid_tiles_are_the_predict_tool_drawings(images, tmp_path):
    """tools/demo.py's grid is made of exactly what tools/predict.py draws, one tile per image."""
    name = "predict_grid_images"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [{"file_name": p, "image_id": i} for i, p in enumerate(images)])
        MetadataCatalog.get(name).set(thing_classes=["square", "disc"])
    model = FixedDetections()
    # The Visualizer colours each box from np.random: the same seed, the same colours.
    np.random.seed(0)
    grid = np.asarray(Image.open(draw_predictions(model, name, str(tmp_path / "grid.png"), score_threshold=0.5)))
    np.random.seed(0)
    tiles = []
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        instances = model([{"height": rgb.shape[0], "width": rgb.shape[1]}])[0]["instances"]
        tiles.append(draw_instances(rgb, instances[instances.scores >= 0.5], MetadataCatalog.get(name), scale=2.0))
    assert grid.shape == (max(t.shape[0] for t in tiles), sum(t.shape[1] for t in tiles), 3)
    left = tiles[0]
    assert np.array_equal(grid[: left.shape[0], : left.shape[1]], left)
    assert np.array_equal(grid[: tiles[1].shape[0], left.shape[1] :], tiles[1])
