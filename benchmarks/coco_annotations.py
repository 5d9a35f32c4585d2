#!/usr/bin/env python
"""Loading a COCO-size annotation file: ours (``--dataset``) against detectron2's ``load_coco_json``.

    benchmarks/coco_annotations.py --images 20000 --rounds 5
    benchmarks/coco_annotations.py --images 118000 --rounds 2

Generates a COCO-format json (seeded, so the same ``--images`` and ``--seed`` give the
same file) in a temporary directory, shaped like COCO train2017's instances file:
80 categories on ids 1-90 with gaps, images of 480-640 px sides in shuffled id order,
1% of them without annotations, 7 annotations per image on average in shuffled
order, each a box with one polygon of 8-40 points (one in ten has two), coordinates to 2
decimals, 1% crowd annotations with an uncompressed RLE, and the extra fields COCO
carries (``area``, ``license``, ``coco_url``, ...). Every annotation is valid, so both
sides must return the same records.

Both sides run in one process. First the records are checked to agree: ours
(``register_user_dataset`` then the first ``DatasetCatalog.get``) against
``load_coco_json(json, image_dir, name)``, record by record. Then ``--rounds`` rounds
alternate the two sides (``time_alternately``), so that a change of the machine's
load hits both alike; each timed call ends with a full garbage collection while its
records are alive. Medians of wall and process-CPU seconds are reported, with their
ratio. Peak memory: each side runs once more in a fresh process, which reports
its peak RSS growth (``VmHWM`` reset just before the call, minus the RSS then).
"""
import argparse
import datetime
import gc
import itertools
import json
import logging
import os
import sys
import tempfile
from functools import partial

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from d2backbones.benchmarking import peak_rss_growth_mb, run_worker, time_alternately
from d2backbones.data import register_user_dataset

# COCO's 80 category ids: 1-90 without the 10 that the 2014 paper dropped.
CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
ANNOTATIONS_PER_IMAGE = 7
EMPTY_IMAGE_FRACTION = 0.01
CROWD_FRACTION = 0.01
SIDES = ("ours", "detectron2")


def _polygon(rng, box, num_points):
    """A star-shaped polygon of ``num_points`` points inside ``box`` (XYWH), flat [x1, y1, ...]."""
    x, y, w, h = box
    angles = np.sort(rng.uniform(0, 2 * np.pi, num_points))
    radii = rng.uniform(0.5, 1.0, num_points)
    xs = x + w / 2 * (1 + radii * np.cos(angles))
    ys = y + h / 2 * (1 + radii * np.sin(angles))
    return np.round(np.stack([xs, ys], axis=1), 2).ravel().tolist()


def _crowd_rle(rng, box, width, height):
    """An uncompressed RLE (column-major run lengths) of ``box`` filled, as COCO's crowd entries are."""
    x0, y0, w, h = (int(v) for v in box)
    runs = []
    position = 0
    for column in range(x0, x0 + max(w, 1)):
        start = column * height + y0
        runs += [start - position, max(h, 1)]
        position = start + max(h, 1)
    runs.append(width * height - position)
    return {"size": [height, width], "counts": runs}


def synthetic_coco(num_images, seed=0):
    """A COCO instances dict of ``num_images`` images; see the module docstring."""
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(10 * num_images, size=num_images, replace=False) + 1
    images, annotations = [], []
    for image_id in image_ids.tolist():
        width, height = (640, int(rng.integers(480, 641))) if rng.random() < 0.5 else (int(rng.integers(480, 641)), 640)
        images.append({
            "license": int(rng.integers(1, 9)), "file_name": f"{image_id:012d}.jpg",
            "coco_url": f"http://images.cocodataset.org/train2017/{image_id:012d}.jpg",
            "height": height, "width": width, "date_captured": "2013-11-14 11:18:45",
            "flickr_url": f"http://farm4.staticflickr.com/{image_id}.jpg", "id": image_id,
        })
        if rng.random() < EMPTY_IMAGE_FRACTION:
            continue
        for _ in range(int(rng.poisson(ANNOTATIONS_PER_IMAGE - 1)) + 1):
            w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
            box = [round(float(rng.uniform(0, width - w)), 2), round(float(rng.uniform(0, height - h)), 2), round(w, 2), round(h, 2)]
            crowd = rng.random() < CROWD_FRACTION
            if crowd:
                segmentation = _crowd_rle(rng, box, width, height)
            else:
                segmentation = [_polygon(rng, box, int(rng.integers(8, 41))) for _ in range(2 if rng.random() < 0.1 else 1)]
            annotations.append({
                "segmentation": segmentation, "area": round(box[2] * box[3] * 0.7, 2), "iscrowd": int(crowd),
                "image_id": image_id, "bbox": box, "category_id": CATEGORY_IDS[int(rng.integers(len(CATEGORY_IDS)))],
            })
    order = rng.permutation(len(annotations))
    annotations = [annotations[i] for i in order.tolist()]
    for annotation_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = annotation_id
    categories = [{"supercategory": "thing", "id": i, "name": f"class{i}"} for i in CATEGORY_IDS]
    return {"info": {"description": f"synthetic, seed {seed}"}, "licenses": [], "images": images,
            "annotations": annotations, "categories": categories}


def write_synthetic_coco(directory, num_images, seed=0):
    """Write :func:`synthetic_coco` to ``directory``; returns (json path, image dir, counts)."""
    coco = synthetic_coco(num_images, seed)
    counts = {
        "images": len(coco["images"]), "annotations": len(coco["annotations"]),
        "polygons": sum(len(a["segmentation"]) for a in coco["annotations"] if not a["iscrowd"]),
        "crowd": sum(a["iscrowd"] for a in coco["annotations"]),
        "images_without_annotations": len(coco["images"]) - len({a["image_id"] for a in coco["annotations"]}),
    }
    json_path, image_dir = os.path.join(directory, "instances.json"), os.path.join(directory, "images")
    os.makedirs(image_dir, exist_ok=True)
    with open(json_path, "w") as f:
        f.write(json.dumps(coco))
    counts["json_mb"] = os.path.getsize(json_path) / 2**20
    return json_path, image_dir, counts


_calls = itertools.count()


def load_ours(json_path, image_dir):
    """Register under a fresh name, take the first ``DatasetCatalog.get``, unregister."""
    name = f"bench_ours_{next(_calls)}"
    register_user_dataset(name, json_path, image_dir)
    try:
        return DatasetCatalog.get(name)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def load_detectron2(json_path, image_dir):
    name = f"bench_detectron2_{next(_calls)}"
    try:
        return load_coco_json(json_path, image_dir, name)
    finally:
        MetadataCatalog.remove(name)


LOADERS = {"ours": load_ours, "detectron2": load_detectron2}


def settled_load(load, json_path, image_dir):
    """Number of records of one load, after a full garbage collection timed with it, the
    records still alive (as a data loader keeps them). Ours pauses the cycle collector
    while it parses; the collection it puts off would otherwise fall into the next
    call, the other side's."""
    records = load(json_path, image_dir)
    gc.collect()
    return len(records)


def first_difference(ours, theirs):
    """None if the record lists are equal, else a line saying where they first differ."""
    if len(ours) != len(theirs):
        return f"{len(ours)} records against {len(theirs)}"
    for index, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            return f"record {index} ({b.get('file_name')}) differs in {keys}"
    return None


def worker(side, json_path, image_dir):
    """In a fresh process: the peak RSS growth (MiB) of one load, printed last."""
    print(f"{peak_rss_growth_mb(lambda: LOADERS[side](json_path, image_dir)):.1f}")


def main():
    # detectron2 warns at every load that the category ids are not 1..80; said once here.
    logging.getLogger("detectron2.data.datasets.coco").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process peak-memory runs")
    parser.add_argument("--output", default="output/benchmark/coco_annotations.json")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "JSON", "IMAGE_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    print("detectron2's warning that the category ids are not in [1, 80] (COCO's have gaps) is silenced.")

    with tempfile.TemporaryDirectory() as directory:
        json_path, image_dir, counts = write_synthetic_coco(directory, args.images, args.seed)
        print(", ".join(f"{v:.0f} {k}" for k, v in counts.items()), flush=True)
        difference = first_difference(load_ours(json_path, image_dir), load_detectron2(json_path, image_dir))
        if difference:
            print(f"error: the records differ: {difference}", file=sys.stderr)
            return 1
        print("records agree", flush=True)
        timed = time_alternately(
            {side: partial(settled_load, LOADERS[side], json_path, image_dir) for side in SIDES}, args.rounds,
            on_call=lambda name, wall, cpu, timed: print(f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True),
        )
        memory = {} if args.no_memory else {side: run_worker(__file__, "--worker", side, json_path, image_dir) for side in SIDES}

    row = dict(counts, rounds=args.rounds, seed=args.seed, load_average=os.getloadavg(),
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
               wall_s=timed.wall_s, cpu_s=timed.cpu_s, wall_s_all=timed.wall_s_all, cpu_s_all=timed.cpu_s_all,
               wall_ratio=timed.wall_s["ours"] / timed.wall_s["detectron2"],
               cpu_ratio=timed.cpu_s["ours"] / timed.cpu_s["detectron2"], peak_rss_growth_mb=memory)
    if memory:
        row["memory_ratio"] = memory["ours"] / memory["detectron2"]
    print("| images | annotations | json MB | ours s (wall / CPU) | detectron2 s (wall / CPU) | time ratio (wall / CPU) "
          "| ours peak MB | detectron2 peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    peaks = [f"{memory[s]:.0f}" for s in SIDES] + [f"{row['memory_ratio']:.2f}"] if memory else ["-"] * 3
    print(f"| {counts['images']} | {counts['annotations']} | {counts['json_mb']:.0f} "
          f"| {timed.wall_s['ours']:.2f} / {timed.cpu_s['ours']:.2f} "
          f"| {timed.wall_s['detectron2']:.2f} / {timed.cpu_s['detectron2']:.2f} "
          f"| {row['wall_ratio']:.2f} / {row['cpu_ratio']:.2f} | {' | '.join(peaks)} |")
    print(f"load average {' '.join(f'{x:.2f}' for x in row['load_average'])}")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(row, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
