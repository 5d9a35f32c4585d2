"""COCO evaluation on the synthetic val split: faster-coco-eval inside detectron2's
evaluator gives the official pycocotools AP, and perfect predictions score 100."""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator as D2COCOEvaluator
from detectron2.evaluation import coco_evaluation
from detectron2.structures import Boxes, BoxMode, Instances
from faster_coco_eval import COCOeval_faster

from d2backbones.data import register_synthetic_shapes
from d2backbones.evaluation import COCOEvaluator

VAL = "synthetic_shapes_val"


@pytest.fixture(scope="module")
def val_records():
    register_synthetic_shapes()
    return DatasetCatalog.get(VAL)


def predictions_from_ground_truth(records, rng=None):
    """Model outputs built from the annotations: exact, or (with ``rng``) with
    jittered boxes, shuffled scores, some labels swapped and some objects missed."""
    metadata = MetadataCatalog.get(VAL)
    to_contiguous = metadata.thing_dataset_id_to_contiguous_id
    outputs = []
    for record in records:
        height, width = record["height"], record["width"]
        annotations = record["annotations"]
        if rng is not None:
            annotations = [a for a in annotations if rng.random() > 0.15]
        boxes, masks, classes = [], [], []
        for annotation in annotations:
            box = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
            segmentation = annotation["segmentation"]
            if isinstance(segmentation, list):
                segmentation = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
            mask = mask_util.decode(segmentation).astype(bool)
            label = annotation["category_id"]
            if rng is not None:
                box = np.array(box) + rng.normal(0, 2.0, 4)
                mask = np.roll(mask, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
                if rng.random() < 0.1:
                    label = int(rng.integers(0, len(metadata.thing_classes)))
            boxes.append(box)
            masks.append(mask)
            classes.append(label)
        instances = Instances((height, width))
        count = len(boxes)
        instances.pred_boxes = Boxes(torch.tensor(np.array(boxes), dtype=torch.float32).reshape(-1, 4))
        instances.scores = torch.tensor(rng.random(count) if rng is not None else np.ones(count), dtype=torch.float32)
        instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
        instances.pred_masks = torch.tensor(np.array(masks)).reshape(count, height, width)
        outputs.append({"instances": instances})
    assert set(to_contiguous.values()) == set(range(len(metadata.thing_classes)))
    return outputs


def evaluate(evaluator, records, outputs):
    evaluator.reset()
    evaluator.process([{"image_id": r["image_id"]} for r in records], outputs)
    return evaluator.evaluate()


def test_perfect_predictions_score_100(val_records):
    results = evaluate(COCOEvaluator(VAL, distributed=False), val_records, predictions_from_ground_truth(val_records))
    for task in ("bbox", "segm"):
        assert results[task]["AP"] == pytest.approx(100.0), task


def test_faster_coco_eval_matches_pycocotools(val_records):
    outputs = predictions_from_ground_truth(val_records, rng=np.random.default_rng(0))
    ours = evaluate(COCOEvaluator(VAL, distributed=False), val_records, outputs)
    official = evaluate(D2COCOEvaluator(VAL, distributed=False, use_fast_impl=False), val_records, outputs)
    for task in ("bbox", "segm"):
        assert 10.0 < ours[task]["AP"] < 95.0, ours[task]
        for metric, value in official[task].items():
            # 1e-2 on detectron2's 0-100 scale is 1e-4 in COCO units. APl is NaN for both:
            # no object of the 128-px images is "large" (> 96^2 px).
            assert ours[task][metric] == pytest.approx(value, abs=1e-2, nan_ok=True), (task, metric)


def test_uses_faster_coco_eval_and_logs_it(caplog):
    register_synthetic_shapes()
    with caplog.at_level("INFO"):
        evaluator = COCOEvaluator(VAL, distributed=False)
    assert evaluator._cocoeval_fn.__name__ == "COCOeval_faster"
    assert "faster-coco-eval" in caplog.text
    with open(MetadataCatalog.get(VAL).json_file) as f:
        assert len(json.load(f)["images"]) == 300


def test_faster_coco_eval_is_used_for_the_call_only(val_records):
    """Each task is scored by faster-coco-eval, and detectron2's global is put back after."""
    built = []

    class Counting(COCOeval_faster):
        def __init__(self, *args, **kwargs):
            built.append(args[2])
            super().__init__(*args, **kwargs)

    before = coco_evaluation.COCOeval_opt
    evaluator = COCOEvaluator(VAL, distributed=False)
    evaluator._cocoeval_fn = Counting
    evaluate(evaluator, val_records, predictions_from_ground_truth(val_records))
    assert sorted(built) == ["bbox", "segm"]
    assert coco_evaluation.COCOeval_opt is before and evaluator._use_fast_impl is False
