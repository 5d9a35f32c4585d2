#!/usr/bin/env python
"""How close the ViTDet-B backbone forward gets to this machine's matmul rate.

    benchmarks/physical_limit.py --input-size 1024 --iters 2

Counts the backbone's multiply-adds with fvcore at ``--input-size``, times its
forward pass (inference, median of ``--iters`` after one warm-up), and measures the
float32 matmul rate just before and just after (the better of the two is the
machine's rate). Achieved rate = 2 x multiply-adds / seconds.
"""
import argparse
import json
import os

import torch

from d2backbones.benchmarking import machine_description, matmul_gflop_per_s, median_time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    from detectron2.config import LazyConfig, instantiate
    from fvcore.nn import FlopCountAnalysis

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=1024)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--scope", choices=["vit", "backbone"], default="vit",
                        help="the ViT alone, or ViT + simple feature pyramid")
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
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
