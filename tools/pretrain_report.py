#!/usr/bin/env python
"""The figures of a pretraining run: its loss curve and a reconstruction picture.

    tools/pretrain_report.py --config-file configs/Pretrain/mae_vitdet_tiny.py \\
        --run output/pretrain/mae_vitdet_tiny

Reads ``<run>/metrics.json`` and ``<run>/model_final.pth`` (or ``--checkpoint``),
takes the first ``--num-images`` images of the config's training data through its
mapper (with a fixed seed, so the picture is repeatable), and writes
``<run>/loss_curve.png`` and ``<run>/reconstructions.png``: input, masked input,
prediction and target per image (MaskFeat's HOG as oriented glyphs).
"""
import argparse
import os

import torch
from detectron2.config import instantiate

from d2backbones.checkpoint import load_checkpoint
from d2backbones.engine.config import load_config
from d2backbones.engine.datasets import prepare_datasets
from d2backbones.pretrain import MaskTokenPretrainer
from d2backbones.reports import plot_training_curves
from d2backbones.reports.reconstructions import mask_token_panels, plot_reconstructions, reconstruction_panels


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="the pretraining config the run used")
    parser.add_argument("--run", required=True, help="the run's output directory")
    parser.add_argument("--checkpoint", default=None, help="default: <run>/model_final.pth")
    parser.add_argument("--num-images", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, as for tools/train_net.py")
    return parser.parse_args(argv)


def sample_images(cfg, num_images, seed):
    """(N, 3, S, S) uint8 RGB: the first records of the training data, mapped with ``seed``."""
    prepare_datasets(cfg)
    dataset = instantiate(cfg.dataloader.train.dataset)
    mapper = instantiate(cfg.dataloader.train.mapper)
    torch.manual_seed(seed)
    images = torch.stack([mapper(dataset[i])["image"] for i in range(num_images)])
    return images.flip(1) if cfg.model.input_format == "BGR" else images


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    model = instantiate(cfg.model)
    load_checkpoint(model, args.checkpoint or os.path.join(args.run, "model_final.pth"))
    images = sample_images(cfg, args.num_images, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    if isinstance(model, MaskTokenPretrainer):
        panels = mask_token_panels(model, images, model.sample_mask(len(images), images.shape[-2:], generator))
        mask_ratio = model.mask_generator.mask_ratio
    else:
        noise = torch.rand(len(images), model.grid * model.grid, generator=generator)
        panels, mask_ratio = reconstruction_panels(model, images, noise), model.mask_ratio
    name = os.path.basename(os.path.normpath(args.run))
    plot_reconstructions(panels, os.path.join(args.run, "reconstructions.png"), title=f"{name}: mask ratio {mask_ratio}")
    plot_training_curves(os.path.join(args.run, "metrics.json"), os.path.join(args.run, "loss_curve.png"), title=name)
    print(f"wrote {args.run}/reconstructions.png and {args.run}/loss_curve.png")


if __name__ == "__main__":
    main()
