#!/usr/bin/env python
"""Draw training samples as the model sees them: ground truth after the train mapper.

    tools/browse_dataset.py --config-file configs/demo/vitdet_tiny.py --num 8 --output output/browse
    tools/browse_dataset.py --config-file configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py \\
        --dataset mine=ann.json:images/ --num 4 --output output/browse dataloader.train.total_batch_size=4

The samples are those of the config's ``dataloader.train``, built as training builds
it (its mapper and augmentations, e.g. LSJ's scale jitter and crop; its seed,
``train.seed``, or ``--seed``). Each PNG shows the image as loaded with its
annotations (left) and the mapped sample with its ``instances`` (right).
``--dataset`` (repeatable) takes a registered name or ``NAME=ANNOTATIONS.json:IMAGE_DIR``
as ``tools/train_net.py`` does, and browses those datasets instead of the config's
training ones (unless ``dataloader.train.dataset.names=`` is given too). Config
overrides (``key=value``) follow the flags.
"""
import argparse
import os
import sys

from detectron2.data import MetadataCatalog
from PIL import Image

from d2backbones.analysis.browse import draw_sample, mapped_samples, original_records
from d2backbones.analysis.datasets import dataset_from_argument
from d2backbones.engine import adapt_model_to_data, load_config
from d2backbones.engine.cli import INPUT_ERRORS
from d2backbones.engine.datasets import dataset_names

TRAIN_NAMES_KEY = "dataloader.train.dataset.names"
# Small images (the embedded 128 px ones) are drawn larger, so that the labels can be read.
MIN_DRAWN_SIDE = 384


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="LazyConfig python file")
    parser.add_argument(
        "--dataset", action="append", default=[], metavar="NAME | NAME=ANNOTATIONS.json:IMAGE_DIR",
        help="browse this dataset (repeatable): a registered name, or a COCO json to register as NAME",
    )
    parser.add_argument("--num", type=int, default=8, help="samples to draw (default: 8)")
    parser.add_argument("--output", default="output/browse", help="output directory (default: output/browse)")
    parser.add_argument("--seed", type=int, default=None, help="loader seed (default: train.seed, or 0 when it is random)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, key=value")
    return parser.parse_args(argv)


def setup(args):
    """The config with its overrides, its training datasets available and fitted to them."""
    names = [dataset_from_argument(spec) for spec in args.dataset]
    cfg = load_config(args.config_file, args.opts)
    if names and not any(o.startswith(TRAIN_NAMES_KEY + "=") for o in args.opts):
        cfg.dataloader.train.dataset.names = names
    train_names = [dataset_from_argument(name) for name in dataset_names(cfg.dataloader.train)]
    # As training does: box-only data turns the mapper's masks off.
    adapt_model_to_data(cfg, train_names, args.opts)
    return cfg, train_names


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg, train_names = setup(args)
    except INPUT_ERRORS as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        sys.exit(2)
    seed = args.seed if args.seed is not None else max(cfg.train.get("seed", 0), 0)
    samples = mapped_samples(cfg, args.num, seed=seed)
    if samples and "instances" not in samples[0]:
        print("error: the config's train mapper gives no instances (a pretraining config?): "
              "browse_dataset draws detection ground truth", file=sys.stderr)
        sys.exit(2)
    metadata = MetadataCatalog.get(train_names[0])
    image_format = cfg.dataloader.train.mapper.get("image_format", "BGR")
    originals = original_records(cfg)
    os.makedirs(args.output, exist_ok=True)
    for index, sample in enumerate(samples):
        height, width = sample["image"].shape[1:]
        scale = max(1.0, MIN_DRAWN_SIDE / max(height, width))
        drawn = draw_sample(sample, metadata, image_format, originals.get(sample["file_name"]), scale)
        stem = os.path.splitext(os.path.basename(sample["file_name"]))[0]
        Image.fromarray(drawn).save(os.path.join(args.output, f"{index:03d}_{stem}.png"))
    print(f"Wrote {len(samples)} samples of {', '.join(train_names)} to {args.output}")


if __name__ == "__main__":
    main()
