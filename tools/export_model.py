#!/usr/bin/env python
"""Export a LazyConfig detector to TorchScript and/or ONNX, with a sample input and its metadata.

    tools/export_model.py --config-file configs/demo/vitdet_tiny.py --weights output/demo/model_final.pth \\
        --format torchscript onnx --output exported/
    tools/export_model.py --config-file configs/MIMDet/COCO/CFG.py --weights zoo://... --format onnx \\
        --output exported/ --sample-image photo.jpg

Writes ``model.ts`` / ``model.onnx``, ``sample_input.npy`` (the traced input, preprocessed
as in evaluation) and ``metadata.json`` (input, outputs, test transforms, class names, and
the exported-vs-eager differences on the sample and on a crop of it). The graph takes one
(3, H, W) preprocessed image and returns boxes, scores, classes (and mask probabilities)
in its pixels; ``d2backbones.export.postprocess`` resizes them to the original image and
pastes the masks, as eager ``model(inputs)`` does. Runs on the CPU.
"""
import argparse
import logging
import sys

from detectron2.utils.logger import setup_logger

from d2backbones.engine.errors import UsageError
from d2backbones.export import EXPORT_FORMATS, export_from_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="LazyConfig python file")
    parser.add_argument("--weights", required=True, help='checkpoint: path, URL, detectron2:// or zoo://; "" for random init')
    parser.add_argument("--format", nargs="+", required=True, choices=list(EXPORT_FORMATS), help="one or both")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--sample-image", help="image to trace with (default: 480 x 640 noise); preprocessed as in evaluation")
    parser.add_argument("--allow-unsafe", action="store_true", help="allow checkpoints that need full unpickling")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, key=value")
    return parser.parse_args(argv)


def summary(metadata):
    """One line per format: its file and the largest exported-vs-eager differences."""
    lines = []
    for name, checks in metadata.get("check", {}).items():
        boxes = max(c["boxes"] for c in checks)
        scores = max(c["scores"] for c in checks)
        sizes = " and ".join(f"{c['size'][0]}x{c['size'][1]} ({c['expected']} detections)" for c in checks)
        lines.append(f"{metadata['files'][name]}: max |difference| to eager on {sizes}: "
                     f"boxes {boxes:.2g} px, scores {scores:.2g}")
    return lines


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="d2backbones", abbrev_name="d2b")
    logging.getLogger("d2backbones").setLevel(logging.INFO)
    try:
        metadata = export_from_config(
            args.config_file, args.weights, args.format, args.output, overrides=args.opts,
            sample_image=args.sample_image, allow_unsafe=args.allow_unsafe or None,
        )
    except (UsageError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        sys.exit(2)
    for line in summary(metadata):
        print(line)
    print(f"wrote {', '.join(metadata['files'].values())}, {metadata['input']['sample']} and metadata.json to {args.output}")


if __name__ == "__main__":
    main()
