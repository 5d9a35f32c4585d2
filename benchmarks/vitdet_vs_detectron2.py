#!/usr/bin/env python
"""ViTDet-B backbone, ours against detectron2's, forward+backward, batch 1.

    benchmarks/vitdet_vs_detectron2.py --input-size 1024 512 --rounds 2

Both backbones (ViT-B + simple feature pyramid, as in ViTDet's Mask R-CNN config,
drop path off) are built in one process with the same weights (detectron2's copied
into ours, rel-pos tables made non-zero) and run on the same input. The outputs and
the input gradients are checked to agree first; then the two are timed in
alternation, ``--rounds`` times, and the medians compared (wall and CPU seconds).
``--scopes`` adds a single window block and a single global block of the ViT.
``--implementations ours`` runs our side alone, for sizes where detectron2's would not
fit in memory (its global blocks keep N x N matrices; see "How cost grows" in
BENCHMARKS.md): then nothing is compared and no ratio is given.

Peak memory: each (scope, size, implementation) runs once more in a fresh process,
which reports its peak RSS minus its RSS after building the model. "ours+ckpt" is
ours with per-block activation checkpointing (``use_act_checkpoint``).
"""
import argparse
import json
import os
from functools import partial

import torch

from d2backbones.benchmarking import machine_description, max_rel_err, peak_rss_growth_mb, run_worker, time_alternately
from d2backbones.reports.markdown import format_cell, markdown_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_MODEL_CONFIG = os.path.join(REPO, "configs/common/models/mask_rcnn_vitdet.py")
IMPLEMENTATIONS = ("detectron2", "ours")
WINDOW_BLOCK, GLOBAL_BLOCK = 0, 2  # indexes in ViTDet-B


def build_backbone(implementation):
    """ViTDet-B backbone (ViT + simple feature pyramid) of detectron2 or ours, seeded."""
    from detectron2 import model_zoo
    from detectron2.config import LazyConfig, instantiate

    if implementation == "detectron2":
        cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model.backbone
    else:
        cfg = LazyConfig.load(OUR_MODEL_CONFIG).model.backbone
        cfg.net.use_act_checkpoint = implementation == "ours+ckpt"
    cfg.net.drop_path_rate = 0.0
    torch.manual_seed(0)
    backbone = instantiate(cfg)
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if "rel_pos" in name:  # zero-initialised: make the rel-pos terms count
                param.normal_(std=0.02)
    return backbone.train()


def scope_module(backbone, scope):
    if scope == "backbone":
        return backbone
    return backbone.net.blocks[WINDOW_BLOCK if scope == "window" else GLOBAL_BLOCK]


def scope_input(scope, input_size):
    generator = torch.Generator().manual_seed(1)
    if scope == "backbone":
        return torch.randn(1, 3, input_size, input_size, generator=generator)
    grid = input_size // 16
    return torch.randn(1, grid, grid, 768, generator=generator)


def forward_backward(module, x):
    """One training pass; returns the outputs and the input gradient."""
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    out = module(x)
    outputs = out if isinstance(out, dict) else {"out": out}
    sum(feature.square().mean() for feature in outputs.values()).backward()
    return {name: feature.detach() for name, feature in outputs.items()}, x.grad


def matched_backbones():
    """detectron2's backbone and ours, ours holding detectron2's weights."""
    backbones = {name: build_backbone(name) for name in IMPLEMENTATIONS}
    backbones["ours"].load_state_dict(backbones["detectron2"].state_dict())
    return backbones


def compare(scope, input_size, rounds, implementations=IMPLEMENTATIONS):
    """Check agreement, then time the implementations alternately in this process
    (one of them alone: timed only)."""
    backbones = {name: backbone for name, backbone in matched_backbones().items() if name in implementations}
    modules = {name: scope_module(b, scope) for name, b in backbones.items()}
    x = scope_input(scope, input_size)

    timed = time_alternately({name: partial(forward_backward, module, x) for name, module in modules.items()}, rounds)
    row = {"scope": scope, "input_size": input_size, "rounds": rounds,
           "wall_s": timed.wall_s, "cpu_s": timed.cpu_s, "wall_s_all": timed.wall_s_all}
    if set(IMPLEMENTATIONS) <= set(modules):
        (ref_out, ref_grad), (our_out, our_grad) = timed.first_results["detectron2"], timed.first_results["ours"]
        row.update(
            output_max_rel_err=max(max_rel_err(our_out[k], ref_out[k]) for k in ref_out),
            input_grad_max_rel_err=max_rel_err(our_grad, ref_grad),
            time_ratio=timed.wall_s["ours"] / timed.wall_s["detectron2"],
            cpu_time_ratio=timed.cpu_s["ours"] / timed.cpu_s["detectron2"],
        )
    return row


def float64_agreement(input_size):
    """Largest relative differences of the whole backbone's gradients, computed in float64.

    Separates a different computation from float32 rounding: the backbone's input
    gradient is a nearly cancelling sum that float32 orders differently per form.
    """
    backbones = {name: backbone.double() for name, backbone in matched_backbones().items()}
    x = scope_input("backbone", input_size).double()
    input_grads = {name: forward_backward(backbone, x)[1] for name, backbone in backbones.items()}
    params = {name: dict(backbone.named_parameters()) for name, backbone in backbones.items()}
    return {
        "input_size": input_size,
        "input_grad_max_rel_err": max_rel_err(input_grads["ours"], input_grads["detectron2"]),
        "param_grad_max_rel_err": max(
            max_rel_err(params["ours"][name].grad, param.grad) for name, param in params["detectron2"].items()
        ),
    }


def memory_worker(scope, input_size, implementation):
    """Peak RSS growth (MiB) of one forward+backward in this fresh process."""
    module = scope_module(build_backbone(implementation), scope)
    x = scope_input(scope, input_size)
    return peak_rss_growth_mb(partial(forward_backward, module, x))


def measure_memory(scope, input_size, implementation):
    return run_worker(__file__, "--memory-worker", scope, input_size, implementation)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--scopes", nargs="+", default=["backbone", "window", "global"],
                        choices=["backbone", "window", "global"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS,
                        help="the sides to run; one alone is timed and measured without a comparison")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--output", default="output/benchmark/vitdet_vs_detectron2.json")
    parser.add_argument("--memory-worker", nargs=3, metavar=("SCOPE", "INPUT_SIZE", "IMPLEMENTATION"))
    parser.add_argument("--float64-check", type=int, metavar="INPUT_SIZE",
                        help="only compare the backbone's gradients in float64 at this size")
    args = parser.parse_args()
    if args.float64_check:
        print(json.dumps(float64_agreement(args.float64_check)))
        return
    if args.memory_worker:
        scope, input_size, implementation = args.memory_worker
        print(memory_worker(scope, int(input_size), implementation))
        return

    results = []
    print(f"machine: {machine_description()}")
    print("| input | scope | output rel err | ours s | detectron2 s | time ratio | CPU-time ratio "
          "| ours MB | ours+ckpt MB | detectron2 MB | memory ratio | ckpt ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for input_size in args.input_size:
        for scope in args.scopes:
            row = {"scope": scope, "input_size": input_size}
            if not args.memory_only:
                row.update(compare(scope, input_size, args.rounds, args.implementations))
            if not args.no_memory:
                implementations = [name for name in IMPLEMENTATIONS if name in args.implementations]
                if scope == "backbone" and "ours" in implementations:
                    implementations.append("ours+ckpt")
                growth = {name: measure_memory(scope, input_size, name) for name in implementations}
                row["peak_rss_growth_mb"] = growth
                if "detectron2" in growth:
                    row.update({key: growth[name] / growth["detectron2"]
                                for key, name in (("memory_ratio", "ours"), ("ckpt_memory_ratio", "ours+ckpt"))
                                if name in growth})
            results.append(row)
            print(format_row(row), flush=True)
            os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
            with open(args.output, "w") as f:
                json.dump({"machine": machine_description(), "results": results}, f, indent=1)


def format_row(row):
    wall = row.get("wall_s", {})
    growth = row.get("peak_rss_growth_mb", {})
    return markdown_line([
        str(row["input_size"]), row["scope"],
        format_cell(row.get("output_max_rel_err"), "{:.1e}"),
        format_cell(wall.get("ours"), "{:.2f}"), format_cell(wall.get("detectron2"), "{:.2f}"),
        format_cell(row.get("time_ratio"), "{:.2f}"), format_cell(row.get("cpu_time_ratio"), "{:.2f}"),
        format_cell(growth.get("ours"), "{:.0f}"), format_cell(growth.get("ours+ckpt"), "{:.0f}"),
        format_cell(growth.get("detectron2"), "{:.0f}"),
        format_cell(row.get("memory_ratio"), "{:.2f}"), format_cell(row.get("ckpt_memory_ratio"), "{:.2f}"),
    ])


if __name__ == "__main__":
    main()
