#!/usr/bin/env python
"""``make demo``: train a tiny detector from scratch on the embedded synthetic
dataset (CPU, about 10 minutes), evaluate it, and write its report:

- ``<output>/metrics.json`` and ``<output>/results.json`` (COCO AP per task),
- ``<output>/curves.png`` (training loss and validation AP),
- ``<output>/predictions.png`` (detections on held-out images).

    tools/demo.py --config-file configs/demo/vitdet_tiny.py --output output/demo [key=value ...]

A pretraining config (``make demo CONFIG=configs/Pretrain/mae_vitdet_tiny.py``) is
trained the same way and reported as ``tools/pretrain_report.py`` does: the loss curve
and a reconstruction picture; its ``model_final.pth`` is then a detection config's
``train.init_checkpoint``.
"""
import argparse
import logging
import os
import sys

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate

from d2backbones.engine import cli
from d2backbones.pretrain import ImagePretrainer
from d2backbones.reports import draw_predictions, plot_training_curves

logger = logging.getLogger("d2backbones")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
# make demo's box AP / AP50 at seed 42 on 2 threads (README; reproduced at 13.79 / 26.34),
# for a config run without overrides. Float rounding alone moves it by up to 0.7 AP.
PINNED_BOX_AP = {os.path.join(REPO_ROOT, "configs", "demo", "vitdet_tiny.py"): (13.8, 26.3)}
PINNED_TOLERANCE = 1.5


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", default="configs/demo/vitdet_tiny.py")
    parser.add_argument("--output", default="output/demo")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, key=value")
    return parser.parse_args()


def pinned_result_line(config_file, opts, results):
    """One line comparing the run's box AP / AP50 with the pinned ones; None for a config
    without pinned values or a run with overrides."""
    pinned = PINNED_BOX_AP.get(os.path.realpath(config_file))
    if pinned is None or opts or "bbox" not in results:
        return None
    measured = (results["bbox"]["AP"], results["bbox"]["AP50"])
    close = all(abs(m - p) <= PINNED_TOLERANCE for m, p in zip(measured, pinned))
    return (
        f"bbox AP {measured[0]:.1f} / AP50 {measured[1]:.1f} is {'within' if close else 'OUTSIDE'} "
        f"{PINNED_TOLERANCE} of the pinned {pinned[0]} / {pinned[1]} (seed 42, 2 threads, README)"
    )


def main():
    options = parse_args()
    train_args = cli.build_parser().parse_args(
        ["--config-file", options.config_file, f"train.output_dir={options.output}", *options.opts]
    )
    try:
        cfg = cli.setup(train_args)
    except cli.INPUT_ERRORS as error:
        sys.exit(f"error: {error.args[0] if error.args else error}")
    results = cli.main(train_args, cfg)
    if isinstance(cfg.model._target_, type) and issubclass(cfg.model._target_, ImagePretrainer):
        # tools/ is this script's folder, so its sibling imports as a module.
        import pretrain_report

        pretrain_report.main(["--config-file", options.config_file, "--run", options.output, *options.opts])
        print(f"pretrained: use train.init_checkpoint={options.output}/model_final.pth in a detection config")
        return

    model = instantiate(cfg.model).to(cfg.train.device)
    DetectionCheckpointer(model).load(os.path.join(options.output, "model_final.pth"))
    curves = plot_training_curves(
        os.path.join(options.output, "metrics.json"),
        os.path.join(options.output, "curves.png"),
        title=os.path.basename(options.config_file),
    )
    test_name = cfg.dataloader.test.dataset.names
    predictions = draw_predictions(
        model, test_name, os.path.join(options.output, "predictions.png"), input_format=cfg.model.input_format
    )
    summary = ", ".join(f"{task} AP {m['AP']:.1f} / AP50 {m['AP50']:.1f}" for task, m in results.items())
    print(f"\n{os.path.basename(options.config_file)}: {summary}")
    pinned = pinned_result_line(options.config_file, options.opts, results)
    if pinned:
        print(pinned)
    print(f"wrote {curves}, {predictions}, {options.output}/metrics.json, {options.output}/results.json")


if __name__ == "__main__":
    main()
