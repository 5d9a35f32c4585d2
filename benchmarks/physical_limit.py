#!/usr/bin/env python
"""How close the ViTDet-B backbone forward gets to this machine's matmul rate.

    benchmarks/physical_limit.py --input-size 1024 --iters 2

Counts the backbone's multiply-adds with fvcore at ``--input-size``, times its
forward pass (inference, median of ``--iters`` after one warm-up), and measures the
float32 matmul rate just before and just after (the better of the two is the
machine's rate). Achieved rate = 2 x multiply-adds / seconds.

``--profile`` adds one forward under ``torch.profiler`` (with FLOP counting): each aten
op's share of the time, and the rate the matrix products (``addmm``, ``bmm``, ``mm``)
reach inside the model. That rate over the machine's is the forward's ceiling: what it
would reach if every other op took no time at all.
"""
import argparse
import json
import os

import torch

from d2backbones.benchmarking import machine_description, matmul_gflop_per_s, median_time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATMUL_OPS = ("aten::addmm", "aten::bmm", "aten::mm", "aten::baddbmm")


def op_profile(module, x, matmul):
    """Self time, share and FLOPs of each aten op in one forward, and the matmuls' rate."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        module(x)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::") and e.self_cpu_time_total > 0]
    total_s = sum(e.self_cpu_time_total for e in events) / 1e6
    ops = sorted(({"op": e.key, "calls": e.count, "self_s": e.self_cpu_time_total / 1e6,
                   "share": e.self_cpu_time_total / 1e6 / total_s, "gflop": e.flops / 1e9} for e in events),
                 key=lambda op: -op["self_s"])
    matmuls = [op for op in ops if op["op"] in MATMUL_OPS]
    matmul_s, matmul_gflop = sum(op["self_s"] for op in matmuls), sum(op["gflop"] for op in matmuls)
    inside = matmul_gflop / matmul_s
    return {"profiled_s": total_s, "ops": ops, "matmul_share": matmul_s / total_s,
            "matmul_gflop_per_s_inside": inside, "ceiling_fraction_of_matmul": inside / matmul}


def main():
    from detectron2.config import LazyConfig, instantiate
    from fvcore.nn import FlopCountAnalysis

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=1024)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--scope", choices=["vit", "backbone"], default="vit",
                        help="the ViT alone, or ViT + simple feature pyramid")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one forward: time per op and the matmuls' own rate")
    parser.add_argument("--output", default="output/benchmark/physical_limit.json")
    args = parser.parse_args()

    cfg = LazyConfig.load(os.path.join(REPO, "configs/common/models/mask_rcnn_vitdet.py")).model.backbone
    torch.manual_seed(0)
    backbone = instantiate(cfg).eval()
    module = backbone.net if args.scope == "vit" else backbone
    x = torch.randn(1, 3, args.input_size, args.input_size)
    with torch.no_grad():
        gmacs = FlopCountAnalysis(module, (x,)).unsupported_ops_warnings(False).total() / 1e9
        matmul_before = matmul_gflop_per_s()
        seconds = median_time(lambda: module(x), args.iters, warmup=1)
        matmul_after = matmul_gflop_per_s()
    matmul = max(matmul_before, matmul_after)
    achieved = 2 * gmacs / seconds
    result = dict(scope=args.scope, input_size=args.input_size, fvcore_gflops=gmacs, forward_s=seconds,
                  achieved_gflop_per_s=achieved, matmul_gflop_per_s=matmul,
                  matmul_before=matmul_before, matmul_after=matmul_after,
                  fraction_of_matmul=achieved / matmul, machine=machine_description())
    print(f"ViTDet-B {args.scope} forward at {args.input_size}px: {gmacs:.1f} G multiply-adds in {seconds:.2f} s "
          f"= {achieved:.1f} GFLOP/s; matmul {matmul:.1f} GFLOP/s (before {matmul_before:.1f}, after "
          f"{matmul_after:.1f}); {100 * achieved / matmul:.0f}% of matmul")
    if args.profile:
        with torch.no_grad():
            result["profile"] = profile = op_profile(module, x, matmul)
        print(f"profiled forward {profile['profiled_s']:.2f} s: matrix products {100 * profile['matmul_share']:.1f}% "
              f"of it at {profile['matmul_gflop_per_s_inside']:.1f} GFLOP/s inside the model, so at most "
              f"{100 * profile['ceiling_fraction_of_matmul']:.0f}% of matmul if nothing else took time")
        print("| op | calls | share | GFLOP | GFLOP/s |\n|---|---|---|---|---|")
        for op in profile["ops"][:12]:
            rate = f"{op['gflop'] / op['self_s']:.1f}" if op["gflop"] else "-"
            print(f"| `{op['op']}` | {op['calls']} | {100 * op['share']:.1f}% | {op['gflop']:.1f} | {rate} |")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
