#!/usr/bin/env python
"""COCO evaluation: faster-coco-eval against pycocotools on a synthetic set.

    benchmarks/coco_eval.py --images 500 --detections 20 --rounds 3

Builds a random COCO-format ground truth (``--images`` images, 5-15 objects each,
80 categories, boxes and polygon masks) and ``--detections`` scored detections per
image (jittered true objects plus false positives), then runs the evaluation
path our ``COCOEvaluator`` uses (detectron2's ``_evaluate_predictions_on_coco``)
with pycocotools' ``COCOeval`` and with faster-coco-eval's ``COCOeval_faster``,
in alternation, and reports the median seconds and the largest difference in
the 12 summary metrics.
"""
import argparse
import contextlib
import io
import json
import os
import sys
from functools import partial

import numpy as np
from detectron2.evaluation.coco_evaluation import _evaluate_predictions_on_coco
from faster_coco_eval import COCOeval_faster
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from d2backbones.benchmarking import time_alternately

IMAGE_SIZE = 320
NUM_CATEGORIES = 80


def random_box(rng):
    w, h = rng.uniform(8, IMAGE_SIZE / 2, size=2)
    x, y = rng.uniform(0, IMAGE_SIZE - w), rng.uniform(0, IMAGE_SIZE - h)
    return [x, y, w, h]


def box_polygon(box):
    """A diamond inside the box: a mask whose area differs from the box's."""
    x, y, w, h = box
    return [[x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2]]


def synthetic_coco(num_images, detections_per_image, seed=0):
    """(ground-truth dataset dict, detection results list) in COCO format."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "file_name": f"{image_id}.jpg"})
        objects = []
        for _ in range(rng.integers(5, 16)):
            box = random_box(rng)
            category = int(rng.integers(1, NUM_CATEGORIES + 1))
            objects.append((box, category))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category, "bbox": box,
                "area": box[2] * box[3] / 2, "iscrowd": 0, "segmentation": box_polygon(box),
            })
        for index in range(detections_per_image):
            if index < len(objects) and rng.random() < 0.8:
                (x, y, w, h), category = objects[index]
                box = [x + rng.normal(0, w / 10), y + rng.normal(0, h / 10), w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)]
            else:
                box, category = random_box(rng), int(rng.integers(1, NUM_CATEGORIES + 1))
            polygon = box_polygon(box)
            rle = mask_util.merge(mask_util.frPyObjects(polygon, IMAGE_SIZE, IMAGE_SIZE))
            rle["counts"] = rle["counts"].decode("ascii")
            results.append({"image_id": image_id, "category_id": category, "bbox": box,
                            "score": float(rng.uniform(0.05, 1.0)), "segmentation": rle})
    categories = [{"id": i, "name": f"class{i}"} for i in range(1, NUM_CATEGORIES + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def load_ground_truth(dataset):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def evaluate(coco_gt, results, iou_type, cocoeval_fn):
    """The 12 summary metrics of one evaluation."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = _evaluate_predictions_on_coco(coco_gt, results, iou_type, cocoeval_fn=cocoeval_fn)
    return np.asarray(coco_eval.stats[:12], dtype=float)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--detections", type=int, default=20, help="detections per image")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iou-types", nargs="+", default=["bbox", "segm"], choices=["bbox", "segm"])
    parser.add_argument("--output", default="output/benchmark/coco_eval.json")
    args = parser.parse_args()

    dataset, results = synthetic_coco(args.images, args.detections)
    coco_gt = load_ground_truth(dataset)
    print(f"{args.images} images, {len(dataset['annotations'])} objects, {len(results)} detections")
    print("| IoU type | pycocotools s | faster-coco-eval s | speed-up | AP (pycocotools) | AP (faster) | max metric diff |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for iou_type in args.iou_types:
        timed = time_alternately({
            "pycocotools": partial(evaluate, coco_gt, results, iou_type, COCOeval),
            "faster-coco-eval": partial(evaluate, coco_gt, results, iou_type, COCOeval_faster),
        }, args.rounds)
        stats = timed.first_results
        slow, fast = timed.wall_s["pycocotools"], timed.wall_s["faster-coco-eval"]
        diff = float(np.abs(stats["pycocotools"] - stats["faster-coco-eval"]).max())
        row = dict(iou_type=iou_type, images=args.images, detections=len(results), rounds=args.rounds,
                   pycocotools_s=slow, faster_coco_eval_s=fast, speedup=slow / fast,
                   ap_pycocotools=float(stats["pycocotools"][0]), ap_faster=float(stats["faster-coco-eval"][0]),
                   max_metric_diff=diff)
        rows.append(row)
        print(f"| {iou_type} | {slow:.2f} | {fast:.2f} | {slow / fast:.1f}x | {row['ap_pycocotools']:.4f} | "
              f"{row['ap_faster']:.4f} | {diff:.1e} |", flush=True)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(rows, f, indent=1)
    return 0 if all(r["max_metric_diff"] <= 1e-4 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
