#!/usr/bin/env python
"""Evaluation against training on the demo: seconds per image, one model, one process.

    benchmarks/inference_vs_training.py --weights output/demo/model_final.pth --rounds 10

Builds ``--config-file`` (the demo by default), loads ``--weights`` and holds a
few batches of the train and test loaders in memory. Each round then times, in
turn, on the same model:

- a training step: forward, backward of the summed losses, optimizer step (at
  learning rate 0, so that every round evaluates the loaded weights);
- an evaluation batch the way this project ran it before: the detector's own
  output (its ROI heads over all RoIs at once, detectron2's one-mask-at-a-time
  pasting) and detectron2's ``COCOEvaluator.process`` (one RLE encoding call per mask);
- an evaluation batch the way ``do_test`` runs it now: the ROI heads over chunks of
  RoIs (``ChunkedStandardROIHeads``), ``with_batch_pasting`` and our
  ``COCOEvaluator.process``.

Before timing, both evaluation paths run over every held test batch, and their
boxes, scores, classes, masks and COCO records must be equal. The report gives the
median seconds per image, the median over rounds of each round's eval / train
ratio (wall and CPU seconds), and a profile of each evaluation path by stage
(inclusive CPU seconds per batch, from timers around detectron2's own stage methods). Data loading (done by loader
workers while the model runs) and the COCO AP computation at the end of an
evaluation are timed once, apart.
"""
import argparse
import contextlib
import itertools
import json
import os
import statistics
import sys
import time
from functools import partial

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.evaluation import COCOEvaluator as D2COCOEvaluator
from detectron2.modeling import GeneralizedRCNN
from detectron2.utils.events import EventStorage

from d2backbones.benchmarking import machine_description, time_alternately
from d2backbones.checkpoint import load_checkpoint
from d2backbones.engine.data_loading import build_test_loader, build_train_loader
from d2backbones.inference.mask_paste import with_batch_pasting
from d2backbones.utils import temporarily_set

PATHS = ("before", "now")


class StageTimer:
    """CPU seconds (this process, all threads) spent inside named methods, per call
    of :meth:`timing`: steadier than wall seconds on a machine others share.

    ``stages`` are (label, owner, method name) triples; while ``timing`` is active each
    such method is replaced by a timed call of itself (inclusive of what it calls).
    """

    def __init__(self, stages):
        self.stages = stages
        self.seconds = {label: [] for label, _, _ in stages}

    def add(self, label, seconds):
        """Count ``seconds`` towards ``label`` in the current :meth:`timing` block."""
        self._current[label] = self._current.get(label, 0.0) + seconds

    def _timed(self, label, fn):
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.process_time() - start)

        return timed

    @contextlib.contextmanager
    def timing(self):
        self._current = {label: 0.0 for label, _, _ in self.stages}
        with contextlib.ExitStack() as stack:
            for label, owner, name in self.stages:
                original = getattr(owner, name)
                timed = self._timed(label, original)
                # A static method stays static on its class.
                stack.enter_context(temporarily_set(owner, name, staticmethod(timed) if isinstance(owner, type) else timed))
            yield
        for label, seconds in self._current.items():
            self.seconds.setdefault(label, []).append(seconds)


def detector_stages(model):
    """(label, owner, method) of the inference stages of a ``GeneralizedRCNN``."""
    rpn, heads = model.proposal_generator, model.roi_heads
    return [
        ("preprocess (normalise, pad)", model, "preprocess_image"),
        ("backbone", model.backbone, "forward"),
        ("RPN (all)", rpn, "forward"),
        ("RPN top-k + NMS", rpn, "predict_proposals"),
        ("box head (all)", heads, "_forward_box"),
        ("box score filter + NMS + top-100", heads.box_predictor, "inference"),
        ("mask head (pooler, convs)", heads, "_forward_mask"),
        ("postprocess (scale, mask pasting)", GeneralizedRCNN, "_postprocess"),
    ]


def held_batches(cfg, train_batches, test_batches):
    """(train batches, test batches, seconds per train batch, seconds per test batch)
    read in this process, so that no loader worker runs during the timing."""
    cfg.dataloader.train.num_workers = 0
    cfg.dataloader.test.num_workers = 0
    loaded, seconds = [], []
    for loader, count in ((build_train_loader(cfg, seed=0, strict=False), train_batches), (build_test_loader(cfg), test_batches)):
        start = time.perf_counter()
        loaded.append(list(itertools.islice(iter(loader), count)))
        seconds.append((time.perf_counter() - start) / count)
    return loaded[0], loaded[1], seconds[0], seconds[1]


def train_step(model, optimizer, batch):
    model.train()
    with EventStorage():  # detectron2's heads log training statistics into one
        losses = model(batch)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()


def eval_batch(path, model, evaluator, batch, timer=None):
    """One test batch through ``path`` ("before" or "now"): model outputs, then the
    evaluator's ``process``. Returns the outputs."""
    model.eval()
    detector = with_batch_pasting(model) if path == "now" else model
    process = evaluator.process if path == "now" else partial(D2COCOEvaluator.process, evaluator)
    heads = model.roi_heads
    # Before: detectron2's ROI heads ran all RoIs at once.
    chunking = temporarily_set(heads, "chunk_bytes", 0) if path == "before" and hasattr(heads, "chunk_bytes") else contextlib.nullcontext()
    with torch.no_grad(), chunking, timer.timing() if timer else contextlib.nullcontext():
        outputs = detector(batch)
        start = time.process_time()
        process(batch, outputs)
        if timer:
            timer.add("evaluator.process (COCO records)", time.process_time() - start)
    return outputs


def check_paths_agree(model, evaluators, batches):
    """Both paths give equal boxes, scores, classes, masks and COCO records on every
    batch; returns the mean detections per image."""
    counts = []
    for batch in batches:
        outputs = {}
        for path in PATHS:
            evaluators[path].reset()
            outputs[path] = eval_batch(path, model, evaluators[path], batch)
        for before, now in zip(outputs["before"], outputs["now"]):
            before, now = before["instances"], now["instances"]
            for field in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
                a, b = before.get(field), now.get(field)
                a, b = (a.tensor, b.tensor) if field == "pred_boxes" else (a, b)
                if not torch.equal(a, b):
                    raise SystemExit(f"the two evaluation paths disagree on {field}: fix the new path before timing it")
            counts.append(len(now))
        if evaluators["before"]._predictions != evaluators["now"]._predictions:
            raise SystemExit("the two evaluators stored different COCO records: fix the new conversion before timing it")
    return statistics.mean(counts)


def median_ratio(numerators, denominators):
    """The median over rounds of each round's ratio."""
    return statistics.median(n / d for n, d in zip(numerators, denominators))


def profile_paths(model, evaluators, batches, rounds):
    """Median inclusive CPU seconds per batch of each stage, per path, alternating paths."""
    timers = {path: StageTimer(detector_stages(model)) for path in PATHS}
    totals = {path: [] for path in PATHS}
    for _, batch in itertools.product(range(rounds), batches):
        for path in PATHS:
            start = time.process_time()
            eval_batch(path, model, evaluators[path], batch, timers[path])
            totals[path].append(time.process_time() - start)
    for path in PATHS:
        timers[path].seconds["total"] = totals[path]
    return {path: {label: statistics.median(s) for label, s in timer.seconds.items()} for path, timer in timers.items()}


def coco_ap_seconds(evaluator, model, batches):
    """Seconds of ``evaluator.evaluate()`` (COCO AP) after processing ``batches``."""
    evaluator.reset()
    for batch in batches:
        eval_batch("now", model, evaluator, batch)
    start = time.perf_counter()
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        evaluator.evaluate()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", default="configs/demo/vitdet_tiny.py")
    parser.add_argument("--weights", default="", help="checkpoint to evaluate (default: the random initialisation)")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds (train step, eval before, eval now)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4, help="train and test batches held in memory")
    parser.add_argument("--profile-rounds", type=int, default=2, help="passes over the test batches for the profile")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--output", default="output/benchmark/inference_vs_training.json")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.overrides)
    model = instantiate(cfg.model).to("cpu")
    if args.weights:
        load_checkpoint(model, args.weights)
    cfg.optimizer.params.model = model
    cfg.optimizer.lr = 0.0
    optimizer = instantiate(cfg.optimizer)
    train, test, train_load_s, test_load_s = held_batches(cfg, args.batches, args.batches)
    evaluators = {path: instantiate(cfg.dataloader.evaluator) for path in PATHS}
    images = len(test[0])
    if len(train[0]) != images:
        raise SystemExit(f"train batches hold {len(train[0])} images, test batches {images}; give both one batch size")

    detections = check_paths_agree(model, evaluators, test)
    print(f"{machine_description()}; torch threads {torch.get_num_threads()}")
    print(f"{args.config_file}, weights {args.weights or '(random init)'}: batches of {images} images, "
          f"{detections:.1f} detections per image; both evaluation paths agree on boxes, masks and records.")

    counter = itertools.count()

    def next_batch(batches):
        return batches[next(counter) % len(batches)]

    timed = time_alternately({
        "train step": lambda: train_step(model, optimizer, next_batch(train)),
        "eval before": lambda: eval_batch("before", model, evaluators["before"], next_batch(test)),
        "eval now": lambda: eval_batch("now", model, evaluators["now"], next_batch(test)),
    }, args.rounds, args.warmup)
    ratios = {
        clock: {path: median_ratio(all_s[f"eval {path}"], all_s["train step"]) for path in PATHS}
        for clock, all_s in (("wall", timed.wall_s_all), ("cpu", timed.cpu_s_all))
    }
    print(f"\n{args.rounds} rounds, medians (wall s; CPU s of this process, all threads):\n")
    print("| | wall s / batch | wall s / image | wall / train step | CPU s / image | CPU / train step |")
    print("|---|---|---|---|---|---|")
    rows = [("train step", "train step", None)] + [(f"eval batch, {path}", f"eval {path}", path) for path in PATHS]
    for label, name, path in rows:
        wall_ratio, cpu_ratio = (f"{ratios[c][path]:.2f}x" if path else "1" for c in ("wall", "cpu"))
        print(f"| {label} | {timed.wall_s[name]:.3f} | {timed.wall_s[name] / images:.4f} | {wall_ratio} | "
              f"{timed.cpu_s[name] / images:.4f} | {cpu_ratio} |")

    profile = profile_paths(model, evaluators, test, args.profile_rounds)
    print(f"\nProfile of an evaluation batch (median inclusive CPU s / batch over {args.profile_rounds} x {len(test)} batches):\n")
    print("| stage | before | now |")
    print("|---|---|---|")
    for label in profile["before"]:
        print(f"| {label} | {profile['before'][label]:.4f} | {profile['now'][label]:.4f} |")
    ap_s = coco_ap_seconds(evaluators["now"], model, test)
    print(f"\nApart: reading a batch (mapper, in the loader workers) {train_load_s:.3f} s train, {test_load_s:.3f} s test; "
          f"COCO AP of {len(test) * images} images {ap_s:.3f} s ({ap_s / (len(test) * images):.4f} s / image).")

    record = dict(config_file=args.config_file, weights=args.weights, rounds=args.rounds, images_per_batch=images,
                  threads=torch.get_num_threads(), detections_per_image=detections, wall_s=timed.wall_s,
                  wall_s_all=timed.wall_s_all, cpu_s=timed.cpu_s, cpu_s_all=timed.cpu_s_all, eval_over_train=ratios, profile_s_per_batch=profile,
                  load_s_per_batch=dict(train=train_load_s, test=test_load_s), coco_ap_s_per_image=ap_s / (len(test) * images),
                  machine=machine_description())
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=1)
    print(f"Record: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
