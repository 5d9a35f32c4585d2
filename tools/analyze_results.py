#!/usr/bin/env python
"""Where a detector's errors come from, read from its COCO results file.

    tools/train_net.py --config-file configs/demo/vitdet_tiny.py --eval-only \\
        train.init_checkpoint=output/demo/model_final.pth
    tools/analyze_results.py --results output/demo/inference/coco_instances_results.json \\
        --dataset synthetic_shapes_val --output output/demo/analysis
    tools/analyze_results.py --results RESULTS.json --dataset mine=ann.json:images/ --output analysis/

``--results`` is what detectron2's COCOEvaluator writes into its ``output_dir``
(``coco_instances_results.json``; ``tools/train_net.py`` puts it in
``<train.output_dir>/inference``); ``--dataset`` the data it was made on: a
registered name (``synthetic_shapes_val``, ``coco_2017_val``, ...) or, as for
``tools/train_net.py``, ``NAME=ANNOTATIONS.json:IMAGE_DIR``. Writes into ``--output``:
summary.md (TIDE's error table, per-category AP, the image ranking), metrics.json,
tide_errors.png, pr_curves.png, confusion_matrix.png, best_images.png and
worst_images.png.
"""
import argparse
import os
import sys

from detectron2.data import DatasetCatalog, MetadataCatalog

from d2backbones.analysis.datasets import dataset_from_argument
from d2backbones.analysis.records import TASKS, pair_results_with_dataset, read_results
from d2backbones.analysis.report import analyze


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="coco_instances_results.json of a COCOEvaluator")
    parser.add_argument(
        "--dataset", required=True, metavar="NAME | NAME=ANNOTATIONS.json:IMAGE_DIR",
        help="the dataset the results were made on: a registered name, or a COCO json to register as NAME",
    )
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--task", choices=TASKS, default="bbox", help="analyse boxes or masks (default: bbox)")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU of a match (TIDE's t_f; default: 0.5)")
    parser.add_argument(
        "--score-threshold", type=float, default=0.5,
        help="detections the confusion matrix counts and the image ranking and drawings use (default: 0.5)",
    )
    parser.add_argument("--num-images", type=int, default=4, help="best and worst images drawn, each (default: 4)")
    parser.add_argument("--max-dets", type=int, default=100, help="detections per image kept, as COCO's maxDets")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        name = dataset_from_argument(args.dataset)
        images = pair_results_with_dataset(read_results(args.results), DatasetCatalog.get(name), MetadataCatalog.get(name), args.task)
    except (ValueError, KeyError, FileNotFoundError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        sys.exit(2)
    metrics = analyze(
        images, MetadataCatalog.get(name), args.output, args.task, args.iou, args.score_threshold, args.num_images, args.max_dets
    )
    tide = metrics["tide"]
    errors = ", ".join(f"{k} {v['dap']:.2f}" for k, v in tide["errors"].items())
    print(f"{name}: {metrics['num_images']} images, AP{round(100 * args.iou)} {tide['ap']:.2f}; TIDE dAP: {errors}")
    print(f"Wrote {os.path.join(args.output, 'summary.md')} and its figures")


if __name__ == "__main__":
    main()
