"""Command line of ``tools/benchmark.py``: each config measured in a fresh process,
the records printed as a markdown table and written by :mod:`.report`."""
import argparse
import json
import os
import subprocess
import sys

import torch

from .harness import measure_config
from .report import record_line, records_header, write_outputs
from .sizes import parse_size

__all__ = ["main", "parse_args"]

DESCRIPTION = "Speed and memory of any d2backbones LazyConfig, on random data."


def build_parser():
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", nargs="+", required=True, help="one or more LazyConfig .py files")
    parser.add_argument("--input-size", type=parse_size, default=(1024, 1024),
                        help="input size in pixels: 1024 (square) or HEIGHTxWIDTH, e.g. 800x1333")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", choices=["off", "fp16", "bf16"], default="off")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--no-flops", action="store_true", help="skip the fvcore count (it traces the model)")
    parser.add_argument("--no-infer", action="store_true", help="time training only")
    parser.add_argument("--matmul", action="store_true", help="also measure the machine's matmul GFLOP/s")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the square matrices of --matmul")
    parser.add_argument("--name", default=None, help="label of the record (default: the config's file name)")
    parser.add_argument("--output-dir", default="output/benchmark")
    parser.add_argument("--append", action="store_true", help="add to <output-dir>/benchmark.json")
    parser.add_argument("--in-process", action="store_true", help="measure in this process (one config)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return parser


def parse_args(argv=None):
    """The settings of one benchmark run, checked: configs exist, CUDA is there if asked for."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # "--config-file a.py key=value" puts the override among the config files.
    args.opts = [f for f in args.config_file if "=" in f] + args.opts
    args.config_file = [f for f in args.config_file if "=" not in f]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    if args.in_process and len(args.config_file) > 1:
        parser.error("--in-process measures one config")
    for config_file in args.config_file:
        if not os.path.isfile(config_file):
            parser.error(f"config file not found: {config_file}")
    return args


def run_in_subprocess(argv, config_file):
    """Measure one config in a fresh interpreter (``python -m d2backbones.benchmarking``); return its record."""
    child = [arg for arg in argv if arg not in ("--append",)]
    command = [sys.executable, "-m", "d2backbones.benchmarking", "--in-process", "--config-file", config_file]
    command += _without_config_files(child)
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark of {config_file} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _without_config_files(argv):
    out, skipping = [], False
    for arg in argv:
        if arg == "--config-file":
            skipping = True
            continue
        if skipping and (arg.startswith("-") or "=" in arg):
            skipping = False
        if not skipping:
            out.append(arg)
    return out


def main(argv=None):
    """Measure every ``--config-file``, each in its own process; print and write the records."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.in_process:
        record = measure_config(args, args.config_file[0])
        print(json.dumps(record))
        return [record]
    records = []
    json_path = os.path.join(args.output_dir, "benchmark.json")
    if args.append and os.path.isfile(json_path):
        with open(json_path) as f:
            records = json.load(f)
    print(records_header())
    for config_file in args.config_file:
        record = run_in_subprocess(argv, config_file)
        records.append(record)
        print(record_line(record))
        if "matmul_gflop_per_s" in record:
            print(f"  matmul {record['matmul_gflop_per_s']:.1f} GFLOP/s; backbone forward achieves "
                  f"{record.get('backbone_achieved_gflop_per_s', float('nan')):.1f} GFLOP/s "
                  f"({100 * record.get('backbone_fraction_of_matmul', float('nan')):.0f}%)")
    write_outputs(records, args.output_dir)
    print(f"wrote {json_path}, benchmark.md and benchmark.png")
    return records
