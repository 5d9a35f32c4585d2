#!/usr/bin/env python
"""Compare evaluated runs side by side: a markdown table and a PNG plot.

    tools/compare.py output/vitdet_b/results.json output/swin_b/ output/*/results.json \\
        --benchmark output/benchmark/benchmark.json --x params --output output/compare

Each run is a ``results.json`` of ``tools/train_net.py`` (or the directory holding
it). ``--benchmark`` adds the parameters, GFLOPs and inference time that
``tools/benchmark.py`` measured for the same config. Writes ``<output>/compare.md``
and ``<output>/compare.png`` (AP against ``--x`` when known, else bars per run).
"""
import argparse
import glob
import os
import sys

from d2backbones.inference.compare import X_AXES, collect_rows, markdown_table, plot_rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files, directories holding one, or globs")
    parser.add_argument("--benchmark", nargs="*", default=[], help="benchmark.json files of tools/benchmark.py")
    parser.add_argument("--x", choices=sorted(X_AXES), default="params", help="x axis of the plot")
    parser.add_argument("--output", default="output/compare", help="output directory")
    return parser.parse_args(argv)


def expand(patterns):
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise FileNotFoundError(f"{pattern}: no match")
        paths += matches
    return paths


def main(argv=None):
    args = parse_args(argv)
    try:
        rows = collect_rows(expand(args.results), expand(args.benchmark))
    except (FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f"error: {error}")
    os.makedirs(args.output, exist_ok=True)
    table = markdown_table(rows)
    md_path = os.path.join(args.output, "compare.md")
    with open(md_path, "w") as f:
        f.write(table)
    png_path = os.path.join(args.output, "compare.png")
    kind = plot_rows(rows, png_path, args.x)
    print(table)
    print(f"wrote {md_path} and {png_path} ({kind} plot of {len(rows)} runs)")


if __name__ == "__main__":
    main()
