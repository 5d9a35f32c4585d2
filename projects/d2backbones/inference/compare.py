"""Side-by-side comparison of evaluated runs: one markdown table and one plot.

Rows come from ``results.json`` files (``tools/train_net.py --eval-only``), joined by
config file with ``benchmark.json`` records (``tools/benchmark.py``: parameters,
GFLOPs, inference time) when given.
"""
import json
import os

from ..reports.markdown import markdown_table as build_markdown_table
from .results import read_results

__all__ = ["COLUMNS", "X_AXES", "collect_rows", "markdown_table", "plot_rows"]

# x-axis name -> (row key, axis label)
X_AXES = {
    "params": ("params_m", "parameters (M)"),
    "gflops": ("gflops", "GFLOPs per image"),
    "time": ("infer_s_per_image", "inference s / image"),
}
# (row key, header, format); LVIS columns appear only when some row has them.
COLUMNS = [
    ("name", "run", "{}"),
    ("config", "config", "`{}`"),
    ("box_AP", "box AP", "{:.1f}"),
    ("mask_AP", "mask AP", "{:.1f}"),
    ("box_APs", "APs", "{:.1f}"),
    ("box_APm", "APm", "{:.1f}"),
    ("box_APl", "APl", "{:.1f}"),
    ("box_APr", "APr", "{:.1f}"),
    ("box_APc", "APc", "{:.1f}"),
    ("box_APf", "APf", "{:.1f}"),
    ("published", "published box / mask", "{}"),
    ("params_m", "params (M)", "{:.1f}"),
    ("gflops", "GFLOPs", "{:.0f}"),
    ("infer_s_per_image", "s / image", "{:.3f}"),
    ("revision", "revision", "{}"),
]
OPTIONAL_KEYS = {"box_APr", "box_APc", "box_APf", "params_m", "gflops", "infer_s_per_image", "published"}
MISSING = "–"


def _config_key(path):
    return os.path.normpath(path) if path else None


def _read_benchmarks(paths):
    by_config = {}
    for path in paths:
        with open(path) as f:
            records = json.load(f)
        for record in records if isinstance(records, list) else [records]:
            by_config[_config_key(record.get("config"))] = record
    return by_config


def _row(record, benchmark):
    summary = record.get("summary", {})
    published = record.get("published") or {}
    row = {
        "name": record.get("zoo_name") or os.path.basename(os.path.dirname(os.path.abspath(record["path"]))),
        "config": record.get("config_file"),
        "revision": (record.get("git_revision") or "")[:8] or None,
        "published": " / ".join(MISSING if v is None else f"{v:.1f}" for v in (published.get("box_ap"), published.get("mask_ap")))
        if published
        else None,
    }
    for task, prefix in (("bbox", "box"), ("segm", "mask")):
        for metric, value in summary.get(task, {}).items():
            row[f"{prefix}_{metric}"] = value
    if benchmark:
        row["params_m"] = benchmark["params"] / 1e6 if benchmark.get("params") is not None else None
        row["gflops"] = benchmark.get("gflops")
        row["infer_s_per_image"] = benchmark.get("infer_s_per_image")
    return row


def collect_rows(results_paths, benchmark_paths=()):
    """One row per ``results.json`` (a file, or a directory holding one), with the
    benchmark figures of the same config when ``benchmark_paths`` have them."""
    benchmarks = _read_benchmarks(benchmark_paths)
    rows = []
    for path in results_paths:
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        record = read_results(path)
        rows.append(_row(record, benchmarks.get(_config_key(record.get("config_file")))))
    return rows


def markdown_table(rows):
    """The rows as a markdown table; optional columns only when some row has a value.
    Numbers are right-aligned; the run and config names are not."""
    columns = [c for c in COLUMNS if c[0] not in OPTIONAL_KEYS or any(row.get(c[0]) is not None for row in rows)]
    numeric = {key for key, _, _ in columns if key not in ("name", "config")}
    return build_markdown_table(rows, columns, missing=MISSING, right_align=numeric)


def plot_rows(rows, png_path, x_axis=None):
    """Box AP (and mask AP) per run: against ``x_axis`` ("params", "gflops", "time") as
    a scatter when the rows have it, else as grouped bars. Returns the kind drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["name"] for row in rows]
    series = [(key, label) for key, label in (("box_AP", "box AP"), ("mask_AP", "mask AP")) if any(row.get(key) is not None for row in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) + 3), 4.5))
    x_key, x_label = X_AXES.get(x_axis, (None, None))
    if x_key and any(row.get(x_key) is not None for row in rows):
        kind = "scatter"
        for key, label in series:
            points = [(row[x_key], row[key], row["name"]) for row in rows if row.get(x_key) is not None and row.get(key) is not None]
            ax.scatter([p[0] for p in points], [p[1] for p in points], label=label)
            for x, y, name in points:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(x_label)
    else:
        kind = "bar"
        width = 0.8 / max(len(series), 1)
        for i, (key, label) in enumerate(series):
            values = [row.get(key) if row.get(key) is not None else 0.0 for row in rows]
            ax.bar([j + i * width for j in range(len(rows))], values, width=width, label=label)
        ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(rows))])
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("AP")
    ax.set_title("d2backbones: AP per run")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return kind
