#!/usr/bin/env python
"""How the cost of ViTDet-B grows with the input: a plot and a table from the JSON of
``benchmarks/vitdet_vs_detectron2.py`` and ``benchmarks/whole_detector.py`` run over
several sizes.

    benchmarks/vitdet_vs_detectron2.py --scopes global --input-size 512 768 1024 1280 1536 \\
        --rounds 1 --output output/benchmark/cost_growth_global.json
    benchmarks/vitdet_vs_detectron2.py --scopes backbone --input-size 512 768 1024 \\
        --rounds 1 --output output/benchmark/cost_growth_backbone.json
    benchmarks/whole_detector.py --detectors mask_rcnn --input-size 512 --rounds 1 \\
        --output output/benchmark/cost_growth_detector_512.json      # and 768, 1024, ...
    benchmarks/plot_cost_growth.py output/benchmark/cost_growth_*.json --output docs/images/cost_growth.png

For each scope (the whole backbone, one global-attention block, the whole Mask R-CNN's
training step on two images) and side it plots the forward + backward time and the
peak memory growth against the number of tokens N = (input / 16)^2, and fits the
memory to ``c + a N + b N^2`` by least squares (exact with three sizes). The quadratic term is the attention matrix that a global block
keeps: detectron2's global blocks materialise the (N x N) scores per head, ours never
hold more than one block of queries against all keys (``layers/blockwise_attention.py``).
The table gives the share of the memory at the largest size that the quadratic term
explains, and b in units of one float32 N x N matrix per head of ViT-B (12 heads).
"""
import argparse
import json
import os

import numpy as np

PATCH_SIZE = 16
SIDES = ("ours", "detectron2")
HEADS = 12  # ViT-B
# MB of one float32 (N x N) attention matrix per head, per N^2.
ATTENTION_MATRIX_MB_PER_TOKEN2 = HEADS * 4 / 2**20
SCOPE_TITLES = {
    "detector": "ViTDet-B Mask R-CNN, training step, 2 images",
    "backbone": "ViTDet-B backbone (ViT + pyramid)",
    "global": "one global-attention block",
}


def tokens(input_size):
    return (input_size // PATCH_SIZE) ** 2


def cost_rows(report):
    """Rows of one JSON report, in ``vitdet_vs_detectron2.py``'s layout (a scope, an
    input size, ``wall_s`` and ``peak_rss_growth_mb`` per side); a ``whole_detector.py``
    report gives one ``"detector"`` row per Mask R-CNN training step it ran or measured."""
    rows = [row for row in report["results"] if "scope" in row]
    detector_rows = [row for row in report["results"] if row.get("detector") == "mask_rcnn" and row["pass"] == "train"]
    memory = report.get("memory", {}).get("mask_rcnn")
    if memory and not detector_rows:  # --memory-only: the size is the report's own
        detector_rows = [{"input_size": report["input_size"], **memory}]
    for row in detector_rows:
        rows.append({"scope": "detector", "input_size": row["input_size"], "wall_s": row.get("wall_s", {}),
                     "peak_rss_growth_mb": row.get("peak_rss_growth_mb", {})})
    return rows


def series(rows, scope, side, field):
    """(tokens, values) of one scope and side for ``field`` ("wall_s" or "peak_rss_growth_mb")."""
    points = sorted((tokens(row["input_size"]), row[field][side])
                    for row in rows if row["scope"] == scope and side in row.get(field, {}))
    return np.array([n for n, _ in points], dtype=float), np.array([v for _, v in points], dtype=float)


def linear_quadratic_fit(n, values):
    """Least-squares ``values ~ c + a n + b n^2``; returns (c, a, b)."""
    design = np.stack([np.ones_like(n), n, n * n], axis=1)
    (c, a, b), *_ = np.linalg.lstsq(design, values, rcond=None)
    return c, a, b


def fit_rows(rows):
    """One dict per (scope, side) with enough sizes: the memory fit and its quadratic share."""
    fits = []
    for scope in SCOPE_TITLES:
        for side in SIDES:
            n, memory = series(rows, scope, side, "peak_rss_growth_mb")
            if len(n) < 3:
                continue
            c, a, b = linear_quadratic_fit(n, memory)
            largest = n.max()
            fits.append({
                "scope": scope, "side": side, "sizes": len(n), "constant_mb": c, "linear_mb_per_token": a,
                "quadratic_mb_per_token2": b, "attention_matrices_kept": b / ATTENTION_MATRIX_MB_PER_TOKEN2,
                "largest_tokens": int(largest),
                "quadratic_share_at_largest": b * largest**2 / (c + a * largest + b * largest**2),
                "memory_growth_largest_over_smallest": memory[n.argmax()] / memory[n.argmin()],
                "token_growth_largest_over_smallest": largest / n.min(),
            })
    return fits


def cell(table, side, fmt):
    return fmt.format(table[side]) if side in table else "-"


def ratio(table):
    return f"{table['ours'] / table['detectron2']:.2f}" if set(SIDES) <= set(table) else "-"


def markdown(rows, fits):
    lines = ["| scope | input | tokens | ours s | detectron2 s | time ratio | ours MB | detectron2 MB | memory ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: (r["scope"], r["input_size"])):
        wall, growth = row.get("wall_s", {}), row.get("peak_rss_growth_mb", {})
        lines.append(f"| {row['scope']} | {row['input_size']} | {tokens(row['input_size'])} "
                     f"| {cell(wall, 'ours', '{:.2f}')} | {cell(wall, 'detectron2', '{:.2f}')} | {ratio(wall)} "
                     f"| {cell(growth, 'ours', '{:.0f}')} | {cell(growth, 'detectron2', '{:.0f}')} | {ratio(growth)} |")
    lines += ["", "| scope | side | memory ~ c + a N + b N^2: c (MB) | a (MB/token) | b (MB/token^2) "
              "| b in N x N x 12-head float32 matrices | share of b N^2 at the largest N "
              "| memory growth, largest / smallest size | tokens, largest / smallest |",
              "|---|---|---|---|---|---|---|---|---|"]
    for fit in fits:
        lines.append(f"| {fit['scope']} | {fit['side']} | {fit['constant_mb']:.0f} | {fit['linear_mb_per_token']:.3f} "
                     f"| {fit['quadratic_mb_per_token2']:.2e} | {fit['attention_matrices_kept']:.2f} "
                     f"| {fit['quadratic_share_at_largest']:.0%} "
                     f"| {fit['memory_growth_largest_over_smallest']:.1f}x | {fit['token_growth_largest_over_smallest']:.1f}x |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = [scope for scope in SCOPE_TITLES if any(row["scope"] == scope for row in rows)]
    fig, axes = plt.subplots(len(scopes), 2, figsize=(10, 3.6 * len(scopes)), squeeze=False)
    for row_axes, scope in zip(axes, scopes):
        for ax, field, label in zip(row_axes, ("wall_s", "peak_rss_growth_mb"),
                                    ("forward + backward, s", "peak memory growth, MB")):
            for side, style in zip(SIDES, ("o-", "s--")):
                n, values = series(rows, scope, side, field)
                if len(n):
                    ax.plot(n, values, style, label=side)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("tokens N = (input / 16)^2")
            ax.set_ylabel(label)
            ax.set_title(SCOPE_TITLES[scope], fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="JSON files written by benchmarks/vitdet_vs_detectron2.py "
                                                         "or benchmarks/whole_detector.py")
    parser.add_argument("--output", default="output/benchmark/cost_growth.png")
    args = parser.parse_args()
    rows = []
    for path in args.results:
        try:
            with open(path) as f:
                rows += cost_rows(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.exit(2, f"plot_cost_growth: cannot read {path} as benchmarks/vitdet_vs_detectron2.py "
                           f"or whole_detector.py results ({type(error).__name__}: {error}); give the JSON one "
                           f"of them wrote\n")
    plot(rows, args.output)
    print(markdown(rows, fit_rows(rows)))


if __name__ == "__main__":
    main()
