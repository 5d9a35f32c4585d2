#!/usr/bin/env python
"""Run a LazyConfig detector on images or a video; write drawn PNGs and COCO-format json.

    tools/predict.py --config-file configs/demo/vitdet_tiny.py --weights output/demo/model_final.pth \\
        --input photos/ "more/*.jpg" one.png --output predictions/
    tools/predict.py --config-file CFG --weights zoo://vitdet/coco/mask_rcnn_vitdet_b_100ep \\
        --video clip.mp4 --output predictions/

Writes ``<output>/<image name>.png`` per image (or ``<output>/<video name>.mp4``) and
``<output>/detections.json``: COCO result records (``image_id``, ``category_id``,
``bbox`` XYWH, ``score``, ``segmentation`` RLE) with ``file_name`` and ``category_name``.
Images are preprocessed as in evaluation (the config's test resize, colour order and
padding); runs on the CPU unless ``--device cuda``.
"""
import argparse
import glob
import json
import logging
import os
import sys

import numpy as np
from detectron2.data.detection_utils import read_image
from detectron2.utils.logger import setup_logger
from PIL import Image
from tqdm import tqdm

from d2backbones.inference import Predictor, coco_records, draw_instances

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="LazyConfig python file")
    parser.add_argument("--weights", required=True, help="checkpoint: path, URL, detectron2:// or zoo://")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="image files, glob patterns or directories")
    source.add_argument("--video", help="a video file")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="drop detections scoring below this")
    parser.add_argument(
        "--max-size", type=int, default=None,
        help="first resize images so their longer side is this many pixels (e.g. 128 for the 128-px demo model)",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--allow-unsafe", action="store_true", help="allow checkpoints that need full unpickling")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, key=value")
    return parser.parse_args(argv)


def collect_images(inputs):
    """Image paths from files, glob patterns and directories, in the given order."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(
                os.path.join(item, name) for name in os.listdir(item) if name.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif glob.has_magic(item):
            paths += sorted(p for p in glob.glob(item) if p.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"--input {item}: no such file or directory")
    if not paths:
        raise FileNotFoundError(f"--input {' '.join(inputs)}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return paths


def batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def keep_confident(instances, threshold):
    return instances[instances.scores >= threshold]


def predict_images(predictor, paths, output, threshold, batch_size):
    """Draw each image's detections to ``<output>/<stem>.png``; return the json records."""
    records = []
    used_names = set()
    with tqdm(total=len(paths), unit="img", desc="predict") as bar:
        for chunk in batches(list(enumerate(paths)), batch_size):
            images = [read_image(path, format="RGB") for _, path in chunk]
            for (image_id, path), image, instances in zip(
                chunk, images, predictor.predict_batch(images, input_format="RGB")
            ):
                instances = keep_confident(instances, threshold)
                stem = os.path.splitext(os.path.basename(path))[0]
                name = stem if stem not in used_names else f"{stem}_{image_id}"
                used_names.add(name)
                drawn = draw_instances(image, instances, predictor.metadata)
                Image.fromarray(drawn).save(os.path.join(output, f"{name}.png"))
                records += coco_records(instances, image_id, path, predictor.metadata)
            bar.update(len(chunk))
    return records


def predict_video(predictor, video_path, output, threshold, batch_size):
    """Draw every frame's detections into ``<output>/<stem>.mp4``; return the json records."""
    import cv2

    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise FileNotFoundError(f"--video {video_path}: cannot open it as a video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target = os.path.join(output, os.path.splitext(os.path.basename(video_path))[0] + ".mp4")
    writer = None
    records = []
    frame_id = 0
    with tqdm(total=total, unit="frame", desc="predict") as bar:
        while True:
            frames = []
            while len(frames) < batch_size:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(frame)
            if not frames:
                break
            for frame, instances in zip(frames, predictor.predict_batch(frames, input_format="BGR")):
                instances = keep_confident(instances, threshold)
                drawn = draw_instances(np.ascontiguousarray(frame[:, :, ::-1]), instances, predictor.metadata)
                if writer is None:
                    height, width = drawn.shape[:2]
                    writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
                records += coco_records(instances, frame_id, f"{video_path}#{frame_id}", predictor.metadata)
                frame_id += 1
            bar.update(len(frames))
    capture.release()
    if writer is not None:
        writer.release()
    return records


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="d2backbones", abbrev_name="d2b")
    logging.getLogger("d2backbones").setLevel(logging.INFO)
    try:
        paths = collect_images(args.input) if args.input else None
        predictor = Predictor.from_config(
            args.config_file, args.weights, device=args.device, overrides=args.opts,
            max_input_size=args.max_size, allow_unsafe=args.allow_unsafe or None,
        )
        os.makedirs(args.output, exist_ok=True)
        if paths is not None:
            records = predict_images(predictor, paths, args.output, args.confidence_threshold, args.batch_size)
        else:
            records = predict_video(predictor, args.video, args.output, args.confidence_threshold, args.batch_size)
    except (FileNotFoundError, KeyError, ValueError) as error:
        sys.exit(f"error: {error.args[0] if error.args else error}")
    json_path = os.path.join(args.output, "detections.json")
    with open(json_path, "w") as f:
        json.dump(records, f)
    print(f"{len(records)} detections above {args.confidence_threshold} written to {args.output} ({json_path})")


if __name__ == "__main__":
    main()
