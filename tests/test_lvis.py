"""LVIS configs carry the published LVIS recipe, and LVISEvaluator scores a tiny
LVIS-format dataset made here. (Building and running every config, shrunk, is
tests/test_configs.py's job: it globs these files too.)"""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_lvis_json, write_lvis_micro_config
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_lvis_instances
from detectron2.data.samplers import RepeatFactorTrainingSampler
from d2backbones.evaluation.lvis import LVISEvaluator
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from omegaconf import OmegaConf

from d2backbones.data.resumable_loader import ResumableTrainLoader
from d2backbones.engine import write_results
from d2backbones.engine.data_loading import build_train_loader

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
LVIS_CONFIGS = sorted(CONFIG_ROOT.glob("*/LVIS/*.py"))
IDS = [str(p.relative_to(CONFIG_ROOT)) for p in LVIS_CONFIGS]
TINY = "tiny_lvis_for_tests"
# (category id, name, frequency): one rare, one common, one frequent category.
CATEGORIES = [(1, "aardvark", "r"), (2, "banjo", "c"), (3, "cup", "f")]


def box_predictors(roi_heads):
    return list(roi_heads.box_predictors) if "box_predictors" in roi_heads else [roi_heads.box_predictor]


def test_every_family_has_lvis_configs():
    assert {p.parts[-3] for p in LVIS_CONFIGS} >= {"ViTDet", "Swin", "ConvNeXt", "MIMDet"}
    assert len([p for p in LVIS_CONFIGS if p.parts[-3] == "ViTDet"]) == 6


@pytest.mark.parametrize("path", LVIS_CONFIGS, ids=IDS)
def test_lvis_recipe(path):
    cfg = LazyConfig.load(str(path))
    train, test = cfg.dataloader.train, cfg.dataloader.test
    assert (train.dataset.names, test.dataset.names) == ("lvis_v1_train", "lvis_v1_val")
    assert train.sampler._target_ is RepeatFactorTrainingSampler
    assert train.sampler.repeat_factors.repeat_thresh == 0.001
    assert cfg.dataloader.evaluator._target_ is LVISEvaluator
    assert cfg.dataloader.evaluator.max_dets_per_image == 300
    assert cfg.model.roi_heads.num_classes == 1203
    for predictor in box_predictors(cfg.model.roi_heads):
        assert predictor.use_sigmoid_ce and predictor.use_fed_loss
        assert (predictor.test_topk_per_image, predictor.test_score_thresh) == (300, 0.02)
    # The federated-loss weights: image count ** 0.5 of LVIS v1's 1203 classes
    # (from the metadata detectron2 ships, no annotation file needed).
    first = box_predictors(cfg.model.roi_heads)[0]
    first.input_shape = ShapeSpec(channels=8)
    head = instantiate(first)
    assert isinstance(head, FastRCNNOutputLayers)
    counts = torch.tensor([c["image_count"] for c in MetadataCatalog.get("lvis_v1_train").class_image_count])
    assert torch.allclose(head.fed_loss_cls_weights, counts.float() ** 0.5)


@pytest.fixture(scope="module")
def tiny_lvis(tmp_path_factory):
    """Two images with one object of each frequency group, registered as LVIS."""
    root = tmp_path_factory.mktemp("tiny_lvis")
    boxes = {1: [(10, 10, 30, 20), (60, 40, 20, 30)], 2: [(5, 50, 40, 25), (70, 5, 25, 25)]}
    labels = {1: [1, 2], 2: [3, 1]}
    annotations = []
    for image_id, image_boxes in boxes.items():
        for (x, y, w, h), category in zip(image_boxes, labels[image_id]):
            polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "segmentation": [polygon]})
    images = [{"id": i, "width": 100, "height": 80, "file_name": f"{i:012d}.jpg"} for i in boxes]
    json_path = write_lvis_json(root / "lvis_tiny.json", images, annotations, CATEGORIES, "val2017")
    if TINY in DatasetCatalog.list():
        DatasetCatalog.remove(TINY)
        MetadataCatalog.remove(TINY)
    register_lvis_instances(TINY, {}, json_path, str(root))
    return boxes, labels


def perfect_predictions(boxes, labels):
    """Detections equal to the ground truth, as a model returns them."""
    outputs = []
    for image_id, image_boxes in boxes.items():
        xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in image_boxes], dtype=torch.float32)
        instances = Instances((80, 100))
        instances.pred_boxes = Boxes(xyxy)
        instances.scores = torch.ones(len(xyxy))
        # LVISEvaluator maps the model's 0-based class back to the 1-based LVIS id.
        instances.pred_classes = torch.tensor(labels[image_id]) - 1
        masks = torch.zeros(len(xyxy), 80, 100, dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, xyxy.int().tolist()):
            mask[y0:y1, x0:x1] = True
        instances.pred_masks = masks
        outputs.append(({"image_id": image_id}, {"instances": instances}))
    return outputs


def test_config_evaluator_scores_a_tiny_lvis_dataset(tiny_lvis, tmp_path):
    cfg = LazyConfig.load(str(CONFIG_ROOT / "ViTDet" / "LVIS" / "mask_rcnn_vitdet_b_100ep.py"))
    cfg = LazyConfig.apply_overrides(cfg, [f"dataloader.test.dataset.names={TINY}"])
    evaluator = instantiate(cfg.dataloader.evaluator)
    evaluator._distributed = False
    evaluator.reset()
    for inputs, outputs in perfect_predictions(*tiny_lvis):
        evaluator.process([inputs], [outputs])
    results = evaluator.evaluate()
    for task in ("bbox", "segm"):
        assert results[task]["AP"] == pytest.approx(100.0, abs=0.5)
        for group in ("APr", "APc", "APf"):
            assert results[task][group] == pytest.approx(100.0, abs=0.5)

    # results.json keeps the LVIS groups and writes null, not NaN, for an empty area range.
    results["bbox"]["APl"] = float("nan")
    run = OmegaConf.create({"train": {"output_dir": str(tmp_path), "init_checkpoint": "zoo://vitdet/lvis/mask_rcnn_vitdet_b_100ep",
                                      "max_iter": 0, "device": "cpu"}})
    with open(write_results(run, results, "configs/ViTDet/LVIS/mask_rcnn_vitdet_b_100ep.py", 1.23)) as f:
        record = json.load(f)
    assert record["summary"]["bbox"]["APl"] is None and record["results"]["bbox"]["APl"] is None
    assert set(record["summary"]["segm"]) >= {"AP", "APs", "APm", "APl", "APr", "APc", "APf"}
    assert record["zoo_name"] == "vitdet/lvis/mask_rcnn_vitdet_b_100ep"
    assert record["published"]["box_ap"] == 40.2 and record["seconds"] == 1.2


def test_fed_loss_weights_follow_an_overridden_training_set(tiny_lvis):
    """The weights are read when the model is built, from the training set it names."""
    MetadataCatalog.get(TINY).set(class_image_count=[{"id": c, "image_count": 4 * c} for c, _, _ in CATEGORIES])
    cfg = LazyConfig.load(str(CONFIG_ROOT / "ViTDet" / "LVIS" / "mask_rcnn_vitdet_b_100ep.py"))
    cfg = LazyConfig.apply_overrides(cfg, [f"dataloader.train.dataset.names={TINY}", "model.roi_heads.num_classes=3"])
    cfg.model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=8)
    head = instantiate(cfg.model.roi_heads.box_predictor)
    assert torch.allclose(head.fed_loss_cls_weights, torch.tensor([4.0, 8.0, 12.0]) ** 0.5)
    assert np.isfinite(head.fed_loss_cls_weights.numpy()).all()


def test_the_lvis_recipe_trains_on_the_resumable_loader_with_detectron2s_repeat_factors(tiny_lvis_shapes, tmp_path):
    """The config's RepeatFactorTrainingSampler becomes the resumable loader's repeat
    factors, as detectron2 computes them on the training set; a sampler argument the
    loader cannot reproduce (a seed of its own) leaves the loader as written, with a warning."""
    LazyConfig.load(write_lvis_micro_config(tmp_path / "registers_the_set.py", tiny_lvis_shapes))
    cfg = LazyConfig.load(str(CONFIG_ROOT / "ViTDet" / "LVIS" / "mask_rcnn_vitdet_b_100ep.py"))
    cfg = LazyConfig.apply_overrides(
        cfg, ["dataloader.train.dataset.names=lvis_micro_train", "dataloader.train.sampler.repeat_factors.repeat_thresh=2.0"]
    )
    loader = build_train_loader(cfg, seed=3, strict=False)
    assert isinstance(loader, ResumableTrainLoader)
    expected = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
        DatasetCatalog.get("lvis_micro_train"), repeat_thresh=2.0
    )
    np.testing.assert_array_equal(loader.repeat_factors, expected.numpy())
    assert (loader.repeat_factors > 1).all() and np.ptp(loader.repeat_factors) > 0  # 1.41 and 1.79

    cfg.dataloader.train.sampler.seed = 5
    warnings = []
    handler = logging.Handler()
    handler.emit = warnings.append
    logging.getLogger("d2backbones").addHandler(handler)
    try:
        as_written = build_train_loader(cfg, seed=3, strict=False)
    finally:
        logging.getLogger("d2backbones").removeHandler(handler)
    assert not isinstance(as_written, ResumableTrainLoader)
    assert any("is built as written" in r.getMessage() and "with sampler" in r.getMessage() for r in warnings)
