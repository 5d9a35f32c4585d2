#!/usr/bin/env python
"""Which exact rel-pos attention form is fastest, per ViTDet block type.

    benchmarks/attention_modes.py --input-size 1024 512 --rounds 3

For ViT-B width (768 channels, 12 heads, head_dim 64) and a 16 px patch, it times
one ``Attention`` forward+backward for

- a window block: the (B * windows, 14, 14, 768) tokens of 14 x 14 windows;
- a global block: the (B, H/16, W/16, 768) token map;

in every ``rel_pos_mode`` of ``d2backbones.layers.Attention`` and in detectron2's
``Attention`` (same weights), alternating them in one process, median of
``--rounds``. Peak RSS growth of each variant is measured in a fresh process.
The results decide ``rel_pos_mode="auto"`` (see BENCHMARKS.md).
"""
import argparse
import json
import math
import os
from functools import partial

import torch

from d2backbones.benchmarking import peak_rss_growth_mb, run_worker, time_alternately
from d2backbones.layers import Attention
from d2backbones.layers.attention import REL_POS_MODES

DIM, HEADS, PATCH, WINDOW = 768, 12, 16, 14
VARIANTS = [mode for mode in REL_POS_MODES if mode != "auto"] + ["detectron2"]


def block_input(block_type, input_size, batch_size=1):
    """Token tensor one attention call of this block type sees, and its grid size."""
    grid = input_size // PATCH
    if block_type == "global":
        return torch.randn(batch_size, grid, grid, DIM), grid
    windows = math.ceil(grid / WINDOW) ** 2
    return torch.randn(batch_size * windows, WINDOW, WINDOW, DIM), WINDOW


def build_attention(variant, grid):
    """Our Attention in one mode, or detectron2's, with the same (seeded) weights."""
    from detectron2.modeling.backbone.vit import Attention as ReferenceAttention

    torch.manual_seed(0)
    ours = Attention(DIM, HEADS, use_rel_pos=True, rel_pos_zero_init=False, input_size=(grid, grid),
                     rel_pos_mode="explicit" if variant == "detectron2" else variant)
    if variant != "detectron2":
        return ours
    reference = ReferenceAttention(DIM, HEADS, use_rel_pos=True, input_size=(grid, grid))
    reference.load_state_dict(ours.state_dict())
    return reference


def forward_backward(module, x):
    module.zero_grad(set_to_none=True)
    x.grad = None
    out = module(x)
    out.square().mean().backward()
    return out.detach()


def time_variants(block_type, input_size, rounds):
    torch.manual_seed(1)
    x, grid = block_input(block_type, input_size)
    x.requires_grad_(True)
    modules = {variant: build_attention(variant, grid) for variant in VARIANTS}
    reference_out = forward_backward(modules["detectron2"], x)
    for variant, module in modules.items():
        out = forward_backward(module, x)
        error = ((out - reference_out).abs().max() / reference_out.abs().max()).item()
        if error > 1e-5:
            raise AssertionError(f"{block_type} {variant}: output differs from detectron2 by {error:.2e}")
    calls = {variant: partial(forward_backward, module, x) for variant, module in modules.items()}
    return time_alternately(calls, rounds).wall_s


def memory_of_variant(block_type, input_size, variant):
    """Peak RSS growth (MiB) of one forward+backward, in this (fresh) process."""
    x, grid = block_input(block_type, input_size)
    x.requires_grad_(True)
    module = build_attention(variant, grid)
    return peak_rss_growth_mb(partial(forward_backward, module, x))


def measure_memory(block_type, input_size, variant):
    return run_worker(__file__, "--memory-worker", block_type, input_size, variant)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-types", nargs="+", default=["window", "global"], choices=["window", "global"])
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--output", default="output/benchmark/attention_modes.json")
    parser.add_argument("--memory-worker", nargs=3, metavar=("BLOCK_TYPE", "INPUT_SIZE", "VARIANT"))
    args = parser.parse_args()
    if args.memory_worker:
        block_type, input_size, variant = args.memory_worker
        print(memory_of_variant(block_type, int(input_size), variant))
        return

    torch.set_grad_enabled(True)
    results = []
    print("| input | block | variant | fwd+bwd s | vs detectron2 | peak RSS growth MB | vs detectron2 |")
    print("|---|---|---|---|---|---|---|")
    for input_size in args.input_size:
        for block_type in args.block_types:
            times = time_variants(block_type, input_size, args.rounds)
            memory = {} if args.no_memory else {v: measure_memory(block_type, input_size, v) for v in VARIANTS}
            for variant in VARIANTS:
                row = dict(input_size=input_size, block=block_type, variant=variant, seconds=times[variant],
                           time_ratio=times[variant] / times["detectron2"])
                if memory:
                    row.update(rss_growth_mb=memory[variant], memory_ratio=memory[variant] / memory["detectron2"])
                results.append(row)
                memory_cells = (f"{row['rss_growth_mb']:.0f} | {row['memory_ratio']:.2f}" if memory else "- | -")
                print(f"| {input_size} | {block_type} | {variant} | {row['seconds']:.3f} | "
                      f"{row['time_ratio']:.2f} | {memory_cells} |", flush=True)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
