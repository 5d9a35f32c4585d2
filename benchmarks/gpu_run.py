#!/usr/bin/env python
"""The GPU run: AMP detector steps against detectron2, rel-pos modes, MIMDet-B memory, fp16 training.

    benchmarks/gpu.sh --output-dir output/benchmark/gpu
    benchmarks/gpu.sh --smoke --output-dir /tmp/gpu_smoke   # tiny sizes on the CPU

Sections of ``gpu.json`` (and of the table in ``gpu.md``):

- ``detector``: the ViTDet-B Mask R-CNN of ``configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py``
  against the one built from detectron2's installed ``common/models/mask_rcnn_vitdet.py``,
  detectron2's weights copied into ours (drop path off, rel-pos tables made non-zero).
  Their backbone features on the same image are checked to agree first; then one
  training step each (forward, summed losses, backward, AdamW step; fp16 with a
  GradScaler) under fp16 and bf16 autocast, at 1024 px, batch 2, the two sides
  alternating. Memory: ``torch.cuda.max_memory_allocated`` of one step (peak RSS growth
  on the CPU).
- ``rel_pos``: one ``Attention`` forward + backward at ViT-B width in every
  ``rel_pos_mode``, for a window block (14 x 14 windows) and a global block (1024 px
  token map); outputs checked against ``explicit``. It decides what ``auto`` should
  pick on CUDA.
- ``mimdet``: MIMDet-B at sample ratio 0.5, 800 x 1333, 2 images, one training step:
  peak memory against the 16 GB target.
- ``tiny_train``: 50 fp16 iterations of ``configs/demo/vitdet_tiny.py`` through the
  library's training entry (``tools/train_net.py``); every logged loss must be finite.

``--smoke`` shrinks every size (64-128 px, depth 2, 2 iterations, AMP off) and
runs on the CPU, so that ``make test`` keeps the script working.
"""
import argparse
import datetime
import json
import math
import os
import sys
import time
from functools import partial

import torch

from d2backbones.benchmarking import (
    autocast,
    build_model_and_optimizer,
    check_step,
    machine_description,
    max_rel_err,
    peak_rss_growth_mb,
    synthetic_batch,
    time_alternately,
)
from d2backbones.layers import Attention
from d2backbones.layers.attention import REL_POS_MODES
from d2backbones.reports.markdown import format_cell, markdown_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VITDET_CONFIG = os.path.join(REPO, "configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py")
MIMDET_CONFIG = os.path.join(REPO, "configs/MIMDet/COCO/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py")
MIMDET_TINY_CONFIG = os.path.join(REPO, "configs/demo/mimdet_tiny.py")
TINY_CONFIG = os.path.join(REPO, "configs/demo/vitdet_tiny.py")
MIMDET_TARGET_MB = 16 * 1024
SIDES = ("detectron2", "ours")

# Sizes of the full run and of --smoke.
FULL = dict(image=1024, batch=2, rounds=3, warmup=1, amps=("fp16", "bf16"), attention_dim=768,
            attention_heads=12, window=14, rel_pos_image=1024, mimdet_size=(800, 1333), mimdet_amps=("off", "fp16"),
            train_iters=50, train_amp=True, vit=None, rois_per_image=None)
SMOKE = dict(image=64, batch=2, rounds=1, warmup=0, amps=("off",), attention_dim=64, attention_heads=2, window=4,
             rel_pos_image=128, mimdet_size=(128, 128), mimdet_amps=("off",), train_iters=2, train_amp=False,
             vit=dict(embed_dim=64, depth=2, num_heads=2, window_size=4, window_block_indexes=[0]),
             rois_per_image=32)


def memory_mb(device, fn, absolute=False):
    """Peak memory (MiB) of one call of ``fn``. On CUDA, ``torch.cuda.max_memory_allocated``
    after a reset just before the call, less what was allocated then unless ``absolute``
    (growth: so that another model resident on the device does not count). On the CPU,
    peak RSS growth."""
    if not device.startswith("cuda"):
        return peak_rss_growth_mb(fn)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = 0 if absolute else torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


# ---- detector ------------------------------------------------------------
def detector_config(side, sizes):
    """The Mask R-CNN config of one side, drop path off, shrunk by ``sizes["vit"]`` if given."""
    from detectron2 import model_zoo

    from d2backbones.engine.config import load_config

    if side == "ours":
        model = load_config(VITDET_CONFIG, [f"dataloader.image_size={sizes['image']}"]).model
    else:
        model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
        model.backbone.net.img_size = sizes["image"]
        model.backbone.square_pad = sizes["image"]
    model.backbone.net.drop_path_rate = 0.0
    for key, value in (sizes["vit"] or {}).items():
        setattr(model.backbone.net, key, value)
    if sizes["rois_per_image"]:
        model.roi_heads.batch_size_per_image = sizes["rois_per_image"]
    return model


def matched_detectors(sizes, device):
    """detectron2's detector and ours, ours holding detectron2's weights, in train mode."""
    from detectron2.config import instantiate

    models = {}
    for side in SIDES:
        torch.manual_seed(0)
        models[side] = instantiate(detector_config(side, sizes)).to(device).train()
    with torch.no_grad():
        for name, param in models["detectron2"].named_parameters():
            if "rel_pos" in name:  # zero-initialised: make the rel-pos terms count
                param.normal_(std=0.02)
    models["ours"].load_state_dict(models["detectron2"].state_dict())
    return models


def backbone_agreement(models, batch):
    """Largest relative difference of the pyramid features of the first image (float32, eval)."""
    errors = []
    with torch.no_grad():
        for model in models.values():
            model.eval()
        images = models["detectron2"].preprocess_image(batch[:1]).tensor
        features = {side: model.backbone(images) for side, model in models.items()}
        for model in models.values():
            model.train()
    for level, reference in features["detectron2"].items():
        errors.append(max_rel_err(features["ours"][level], reference))
    return max(errors)


def train_step(model, optimizer, scaler, batch, device, amp):
    """Forward, summed losses, backward and optimizer step; returns the losses as floats."""
    from detectron2.utils.events import EventStorage

    with EventStorage(), autocast(device, amp):
        losses = model(batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(sum(losses.values())).backward()
    scaler.step(optimizer)
    scaler.update()
    return {name: value.item() for name, value in losses.items()}


def run_detector(sizes, device):
    models = matched_detectors(sizes, device)
    batch = synthetic_batch(sizes["batch"], (sizes["image"], sizes["image"]), 80, device=device)
    result = {"input_size": sizes["image"], "batch_size": sizes["batch"],
              "backbone_max_rel_err": backbone_agreement(models, batch), "amp": {}}
    if result["backbone_max_rel_err"] > 1e-3:
        raise RuntimeError(f"ours and detectron2's backbone features differ by {result['backbone_max_rel_err']:.2e}; "
                           "fix the weight copy before timing")
    for amp in sizes["amps"]:
        steps = {}
        for side, model in models.items():
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler(enabled=amp == "fp16" and device.startswith("cuda"))
            steps[side] = partial(train_step, model, optimizer, scaler, batch, device, amp)
        timed = time_alternately(steps, sizes["rounds"], sizes["warmup"], device)
        for side, losses in timed.first_results.items():
            check_step(f"{side} {amp}", losses, None, None)
        memory = {side: memory_mb(device, step) for side, step in steps.items()}
        result["amp"][amp] = {
            "step_s": timed.wall_s,
            "memory_mb": memory,
            "time_ratio": timed.wall_s["ours"] / timed.wall_s["detectron2"],
            "memory_ratio": memory["ours"] / memory["detectron2"],
        }
    return result


# ---- rel-pos modes ---------------------------------------------------------
def attention_input(block_type, sizes, device):
    grid = sizes["rel_pos_image"] // 16
    window = sizes["window"]
    generator = torch.Generator().manual_seed(1)
    if block_type == "global":
        shape, size = (1, grid, grid, sizes["attention_dim"]), grid
    else:
        shape, size = (math.ceil(grid / window) ** 2, window, window, sizes["attention_dim"]), window
    return torch.randn(shape, generator=generator).to(device).requires_grad_(True), size


def attention_step(module, x):
    module.zero_grad(set_to_none=True)
    x.grad = None
    out = module(x)
    out.square().mean().backward()
    return out.detach()


def run_rel_pos(sizes, device):
    result = {}
    for block_type in ("window", "global"):
        x, size = attention_input(block_type, sizes, device)
        modules = {}
        for mode in REL_POS_MODES:
            torch.manual_seed(0)
            modules[mode] = Attention(sizes["attention_dim"], sizes["attention_heads"], use_rel_pos=True,
                                      rel_pos_zero_init=False, input_size=(size, size), rel_pos_mode=mode).to(device)
        steps = {mode: partial(attention_step, module, x) for mode, module in modules.items()}
        timed = time_alternately(steps, sizes["rounds"], sizes["warmup"], device)
        reference = timed.first_results["explicit"]
        errors = {mode: max_rel_err(out, reference) for mode, out in timed.first_results.items()}
        bad = {mode: error for mode, error in errors.items() if error > 1e-3}
        if bad:
            raise RuntimeError(f"{block_type} block: rel_pos_mode outputs differ from explicit: {bad}")
        result[block_type] = {
            "tokens_per_call": size * size,
            "calls": x.shape[0],
            "step_s": timed.wall_s,
            "memory_mb": {mode: memory_mb(device, step) for mode, step in steps.items()},
            "max_rel_err": errors,
            "fastest": min((mode for mode in timed.wall_s if mode != "auto"), key=timed.wall_s.get),
        }
    return result


# ---- MIMDet-B memory -----------------------------------------------------
def run_mimdet(sizes, device, smoke):
    config = MIMDET_TINY_CONFIG if smoke else MIMDET_CONFIG
    torch.manual_seed(0)
    model, optimizer, num_classes = build_model_and_optimizer(
        config, ["model.backbone.bottom_up.sample_ratio=0.5"], device)
    model.train()
    batch = synthetic_batch(sizes["batch"], sizes["mimdet_size"], num_classes, device=device)
    result = {"config": os.path.relpath(config, REPO), "input_size": list(sizes["mimdet_size"]),
              "batch_size": sizes["batch"], "sample_ratio": 0.5, "target_mb": MIMDET_TARGET_MB, "amp": {}}
    for amp in sizes["mimdet_amps"]:
        scaler = torch.amp.GradScaler(enabled=amp == "fp16" and device.startswith("cuda"))
        step = partial(train_step, model, optimizer, scaler, batch, device, amp)
        check_step(f"MIMDet {amp}", step(), None, None)  # warm-up; optimizer state now allocated
        start = time.perf_counter()
        peak = memory_mb(device, step, absolute=True)
        result["amp"][amp] = {"memory_mb": peak, "step_s": time.perf_counter() - start,
                              "under_target": peak < MIMDET_TARGET_MB}
    return result


# ---- tiny config, fp16 -----------------------------------------------------
def run_tiny_train(sizes, device, output_dir):
    from d2backbones.engine import cli

    train_dir = os.path.join(output_dir, "tiny_train")
    argv = [
        "--config-file", TINY_CONFIG,
        f"train.max_iter={sizes['train_iters']}", f"train.amp.enabled={sizes['train_amp']}",
        f"train.device={device}", f"train.output_dir={train_dir}", "train.eval_period=0", "train.log_period=1",
        "dataloader.evaluator=null",
        f"train.checkpointer.period={sizes['train_iters'] + 1}", "dataloader.train.num_workers=0",
    ]
    if sizes["vit"]:
        argv += ["dataloader.image_size=64", "dataloader.train.total_batch_size=2"]
    start = time.perf_counter()
    cli.main(cli.build_parser().parse_args(argv))
    with open(os.path.join(train_dir, "metrics.json")) as f:
        losses = [record["total_loss"] for record in map(json.loads, f) if "total_loss" in record]
    if len(losses) < sizes["train_iters"] or not all(map(math.isfinite, losses)):
        raise RuntimeError(f"tiny training: expected {sizes['train_iters']} finite total_loss values, got {losses}")
    return {"iters": sizes["train_iters"], "amp": "fp16" if sizes["train_amp"] else "off",
            "first_loss": losses[0], "last_loss": losses[-1], "wall_s": time.perf_counter() - start}


# ---- report --------------------------------------------------------------
def markdown_report(report):
    lines = [f"# GPU run ({report['device']}, {report['date']})", "", f"machine: {report['machine']}", ""]
    detector = report["detector"]
    lines += [f"## ViTDet-B Mask R-CNN training step, {detector['input_size']} px, batch {detector['batch_size']}",
              f"backbone features agree to {detector['backbone_max_rel_err']:.1e} (max rel. err)", "",
              "| amp | ours s | detectron2 s | time ratio | ours MB | detectron2 MB | memory ratio |",
              "|---|---|---|---|---|---|---|"]
    for amp, row in detector["amp"].items():
        lines.append(markdown_line([amp] + [format_cell(v, "{:.3f}") for v in (
            row["step_s"]["ours"], row["step_s"]["detectron2"], row["time_ratio"])] + [format_cell(v, "{:.0f}") for v in (
            row["memory_mb"]["ours"], row["memory_mb"]["detectron2"])] + [format_cell(row["memory_ratio"], "{:.2f}")]))
    lines += ["", "## Attention forward + backward per rel_pos_mode", "",
              "| block | tokens/call | " + " | ".join(f"{m} s | {m} MB" for m in REL_POS_MODES) + " | fastest |",
              "|---|---|" + "---|---|" * len(REL_POS_MODES) + "---|"]
    for block_type, row in report["rel_pos"].items():
        cells = [block_type, str(row["tokens_per_call"])]
        for mode in REL_POS_MODES:
            cells += [format_cell(row["step_s"][mode], "{:.4f}"), format_cell(row["memory_mb"][mode], "{:.0f}")]
        lines.append(markdown_line(cells + [row["fastest"]]))
    mimdet = report["mimdet"]
    lines += ["", f"## MIMDet-B, ratio 0.5, {mimdet['input_size'][0]}x{mimdet['input_size'][1]}, "
              f"{mimdet['batch_size']} images (target < {mimdet['target_mb']} MB)", "",
              "| amp | peak MB | step s | under target |", "|---|---|---|---|"]
    for amp, row in mimdet["amp"].items():
        lines.append(markdown_line([amp, format_cell(row["memory_mb"], "{:.0f}"), format_cell(row["step_s"], "{:.2f}"),
                                    str(row["under_target"])]))
    tiny = report["tiny_train"]
    lines += ["", f"## Tiny config, {tiny['iters']} iterations, amp {tiny['amp']}", "",
              f"all losses finite; total_loss {tiny['first_loss']:.3f} -> {tiny['last_loss']:.3f}, {tiny['wall_s']:.0f} s", "",
              "Section seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in report["section_s"].items()), ""]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="output/benchmark/gpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (what make test runs)")
    parser.add_argument("--device", help="default: cuda when available, else cpu; --smoke forces cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = "cpu" if args.smoke else args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = SMOKE if args.smoke else FULL
    os.makedirs(args.output_dir, exist_ok=True)
    report = {"device": device, "smoke": args.smoke, "machine": machine_description(),
              "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "section_s": {}}
    sections = [("detector", partial(run_detector, sizes, device)), ("rel_pos", partial(run_rel_pos, sizes, device)),
                ("mimdet", partial(run_mimdet, sizes, device, args.smoke)),
                ("tiny_train", partial(run_tiny_train, sizes, device, args.output_dir))]
    for name, run in sections:
        start = time.perf_counter()
        report[name] = run()
        report["section_s"][name] = time.perf_counter() - start
        print(f"{name}: {report['section_s'][name]:.1f} s", file=sys.stderr, flush=True)
        with open(os.path.join(args.output_dir, "gpu.json"), "w") as f:
            json.dump(report, f, indent=1)
    with open(os.path.join(args.output_dir, "gpu.md"), "w") as f:
        f.write(markdown_report(report))


if __name__ == "__main__":
    main()
