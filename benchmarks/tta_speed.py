#!/usr/bin/env python
"""Test-time augmentation, before and now: seconds per image, one model, one process.

    OMP_NUM_THREADS=1 benchmarks/tta_speed.py --weights output/demo/model_final.pth --batches 6 --rounds 3 --threads 1

Builds ``--config-file`` (the demo by default), loads ``--weights`` and holds
``--batches`` batches of its test loader in memory. Both paths are
:class:`~d2backbones.inference.tta.DetectorWithTTA` with the same copies (flip and
``--min-sizes``) and merge (``--merge``):

- ``before``: the way this project ran TTA until 2026-12-03, as detectron2's
  ``GeneralizedRCNNWithTTA`` does: the mask pass calls ``model.inference`` with the
  merged boxes, which runs the backbone over every copy a second time, and weighted
  boxes fusion steps through the boxes in torch (:func:`torch_weighted_boxes_fusion`);
- ``now``: the mask pass reads the box pass's features, and the fusion's loop runs in
  NumPy.

Before timing, both paths run over the first held batch, and their boxes, scores,
classes and masks must be equal. Then they are timed in alternation, ``--rounds``
times over all held batches, and the medians compared (wall and CPU seconds).
"""
import argparse
import itertools
import json
import os
from contextlib import nullcontext

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, pairwise_iou

from d2backbones.benchmarking import machine_description, time_alternately
from d2backbones.checkpoint import load_checkpoint
from d2backbones.engine.data_loading import build_test_loader
from d2backbones.inference import tta
from d2backbones.utils import temporarily_set

PATHS = ("before", "now")


def torch_weighted_boxes_fusion(boxes, scores, classes, num_copies, iou_thresh):
    """The algorithm of ``tta.weighted_boxes_fusion``'s docstring, box by box in torch
    with detectron2's ``pairwise_iou`` (the form before the NumPy loop; the tests'
    oracle for it too)."""
    fused_boxes, fused_scores, fused_classes = [], [], []
    for cls in classes.unique():
        idx = torch.nonzero(classes == cls).flatten()
        idx = idx[scores[idx].argsort(descending=True, stable=True)]
        sums, weights, members, cluster_boxes = [], [], [], boxes.new_zeros(0, 4)
        for box, score in zip(boxes[idx], scores[idx]):
            ious = pairwise_iou(Boxes(box[None]), Boxes(cluster_boxes))[0]
            if len(ious) and ious.max() > iou_thresh:
                k = int(ious.argmax())
                sums[k], weights[k], members[k] = sums[k] + score * box, weights[k] + score, members[k] + 1
                cluster_boxes[k] = sums[k] / weights[k]
            else:
                sums.append(score * box)
                weights.append(score)
                members.append(1)
                cluster_boxes = torch.cat([cluster_boxes, box[None]])
        count = torch.tensor(members, dtype=scores.dtype)
        fused_boxes.append(cluster_boxes)
        fused_scores.append(torch.stack(weights) / count * count.clamp(max=num_copies) / num_copies)
        fused_classes.append(classes.new_full((len(members),), int(cls)))
    if not fused_boxes:
        return boxes.new_zeros(0, 4), scores.new_zeros(0), classes.new_zeros(0)
    fused_scores = torch.cat(fused_scores)
    order = fused_scores.argsort(descending=True, stable=True)
    return torch.cat(fused_boxes)[order], fused_scores[order], torch.cat(fused_classes)[order]


class BackboneTwiceTTA(tta.DetectorWithTTA):
    """The ``before`` path: masks through ``model.inference`` with given boxes (the
    backbone again, per copy), and the torch fusion loop."""

    def forward(self, batched_inputs):
        with temporarily_set(tta, "weighted_boxes_fusion", torch_weighted_boxes_fusion):
            return super().forward(batched_inputs)

    def _box_pass(self, inputs):
        outputs, features_by_chunk = super()._box_pass(inputs)
        return outputs, [(chunk, [inputs[i] for i in chunk]) for chunk, _ in features_by_chunk]

    def _mask_pass(self, inputs_by_chunk, given):
        outputs = [None] * len(given)
        for chunk, inputs in inputs_by_chunk:
            square = self._copy_square(inputs[0])
            with nullcontext() if square == self.square else tta._padded_to(self.model.backbone, square):
                results = self.model.inference(inputs, [given[i] for i in chunk], do_postprocess=False)
            for i, result in zip(chunk, results):
                outputs[i] = result
        return outputs


def check_paths_agree(paths, batch):
    """Run both paths on ``batch``; raise unless every output field is equal. Returns
    the mean number of detections per image."""
    outputs = {name: [out["instances"] for out in path(batch)] for name, path in paths.items()}
    for before, now in zip(outputs["before"], outputs["now"]):
        for field in ("scores", "pred_classes", "pred_masks"):
            if not torch.equal(before.get(field), now.get(field)):
                raise SystemExit(f"tta_speed: the two paths' {field} differ: not timed")
        if not torch.equal(before.pred_boxes.tensor, now.pred_boxes.tensor):
            raise SystemExit("tta_speed: the two paths' boxes differ: not timed")
    return sum(len(x) for x in outputs["now"]) / len(outputs["now"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", default="configs/demo/vitdet_tiny.py")
    parser.add_argument("--weights", default="", help="checkpoint to evaluate (default: the random initialisation)")
    parser.add_argument("--min-sizes", type=int, nargs="+", default=[96, 128, 160])
    parser.add_argument("--merge", default="wbf", choices=tta.MERGE_METHODS)
    parser.add_argument("--batches", type=int, default=6, help="test batches held in memory, timed each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--output", default="output/benchmark/tta_speed.json")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args()
    if args.batches < 1 or args.rounds < 1:
        parser.exit(2, f"tta_speed: --batches and --rounds must be at least 1, got {args.batches} and {args.rounds}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.overrides)
    model = instantiate(cfg.model).eval()
    if args.weights:
        load_checkpoint(model, args.weights)
    cfg.dataloader.test.num_workers = 0
    batches = list(itertools.islice(iter(build_test_loader(cfg)), args.batches))
    images = sum(len(batch) for batch in batches)
    settings = dict(min_sizes=args.min_sizes, flip=True, merge=args.merge)
    paths = {"before": BackboneTwiceTTA(model, **settings), "now": tta.DetectorWithTTA(model, **settings)}

    with torch.no_grad():
        detections = check_paths_agree(paths, batches[0])
        print(f"{machine_description()}; torch threads {torch.get_num_threads()}")
        print(f"{args.config_file}, weights {args.weights or '(random init)'}: flip + short sides {args.min_sizes}, "
              f"merge {args.merge}; {detections:.1f} detections per image; both paths give equal detections.")
        timed = time_alternately(
            {name: (lambda path=path: [path(batch) for batch in batches]) for name, path in paths.items()},
            args.rounds)
    per_image = {clock: {name: seconds[name] / images for name in PATHS}
                 for clock, seconds in (("wall", timed.wall_s), ("cpu", timed.cpu_s))}
    ratio = {clock: per_image[clock]["now"] / per_image[clock]["before"] for clock in per_image}
    print(f"\n{args.rounds} rounds over {images} images, medians:\n")
    print("| path | wall s / image | CPU s / image |\n|---|---|---|")
    for name in PATHS:
        print(f"| {name} | {per_image['wall'][name]:.4f} | {per_image['cpu'][name]:.4f} |")
    print(f"| now / before | {ratio['wall']:.2f} | {ratio['cpu']:.2f} |")

    record = dict(config_file=args.config_file, weights=args.weights, min_sizes=args.min_sizes, merge=args.merge,
                  images=images, rounds=args.rounds, threads=torch.get_num_threads(), detections_per_image=detections,
                  s_per_image=per_image, ratio_now_over_before=ratio, wall_s_all=timed.wall_s_all,
                  machine=machine_description())
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=1)
    print(f"Record: {args.output}")


if __name__ == "__main__":
    main()
