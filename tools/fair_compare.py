#!/usr/bin/env python
"""From scratch against masked-image-modeling pretrained, for every family, on equal terms.

    tools/fair_compare.py --output output/fair_compare                     # the whole matrix
    tools/fair_compare.py --families vitdet --labels 0.1 --seeds 42 43 44  # one cell, 3 seeds

Each family (ViTDet and MIMDet with MAE, ConvNeXt with SparK, Swin with SimMIM; the
tiny CPU configs) is pretrained once on the same synthetic unlabeled pool, with the same
images seen and the same target, then fine-tuned and trained from scratch with its
detection config's recipe at every label share and seed. Where one seed's gap is under
``--small-gap`` AP, the pair gets ``--seeds-when-close`` seeds in all. Runs that finished
are kept: rerunning the command continues an interrupted comparison.

Writes ``<output>/fair_compare.{json,md,png}``: box AP (mean and spread over seeds)
against compute (CPU hours of pretraining plus fine-tuning), per family, labels, init.
"""
import argparse
import sys

from d2backbones.comparison import (
    ARMS,
    FairComparePlan,
    box_ap_by_pair,
    collect,
    run_plan,
    summarize,
    write_report,
)
from d2backbones.comparison.runner import RunFailed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="output/fair_compare")
    parser.add_argument("--families", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--labels", nargs="+", type=float, default=[0.1, 1.0], help="shares of the labelled split")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="fine-tuning seeds every pair runs")
    parser.add_argument("--pretrain-iters", type=int, default=1500)
    parser.add_argument("--pretrain-batch", type=int, default=64)
    parser.add_argument("--pool-size", type=int, default=20000, help="unlabeled images (>= 10x the labelled 2,000)")
    parser.add_argument("--target", default="norm_pixels", help="model.target of every pretraining run")
    parser.add_argument("--finetune-iters", type=int, default=500)
    parser.add_argument("--small-gap", type=float, default=2.0, help="gaps under this many AP get more seeds")
    parser.add_argument("--seeds-when-close", type=int, default=3)
    parser.add_argument("--pretrain-opts", nargs="*", default=[], help="key=value for every pretraining run")
    parser.add_argument("--finetune-opts", nargs="*", default=[], help="key=value for every detection run")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        plan = FairComparePlan(
            output_dir=args.output, families=args.families, label_fractions=args.labels, seeds=args.seeds,
            pretrain_iters=args.pretrain_iters, pretrain_batch=args.pretrain_batch, pool_size=args.pool_size,
            target=args.target, finetune_iters=args.finetune_iters,
            pretrain_opts=args.pretrain_opts, finetune_opts=args.finetune_opts,
        )
        runs = plan.runs()
        run_plan(runs)
        extra = plan.extra_seeds(box_ap_by_pair(collect(plan, runs)), args.small_gap, args.seeds_when_close)
        run_plan(extra)
    except (ValueError, RunFailed) as error:
        sys.exit(f"error: {error}")
    measured = collect(plan, runs + extra)
    md_path = write_report(plan, summarize(plan, measured), measured)
    with open(md_path) as f:
        print(f.read())
    print(f"wrote {md_path}, fair_compare.json and fair_compare.png")


if __name__ == "__main__":
    main()
