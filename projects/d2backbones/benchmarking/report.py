"""Benchmark records written out: ``benchmark.json``, a markdown table and a PNG."""
import json
import os

from ..reports.markdown import markdown_header, markdown_row, markdown_table

__all__ = ["TABLE_COLUMNS", "record_line", "records_header", "plot", "write_outputs"]

# Columns of the markdown table: (record key, header, format).
TABLE_COLUMNS = [
    ("name", "config", "{}"),
    ("input_size", "input", "{}"),
    ("batch_size", "batch", "{}"),
    ("device", "device", "{}"),
    ("amp", "amp", "{}"),
    ("params", "params (M)", "{:.1f}"),
    ("backbone_params", "backbone (M)", "{:.1f}"),
    ("gflops", "GFLOPs", "{:.1f}"),
    ("train_s_per_iter", "train s/iter", "{:.3f}"),
    ("train_images_per_s", "train im/s", "{:.1f}"),
    ("infer_s_per_image", "infer s/im", "{:.3f}"),
    ("peak_rss_mb", "peak RSS (MB)", "{:.0f}"),
    ("peak_rss_growth_mb", "RSS growth (MB)", "{:.0f}"),
    ("cuda_max_allocated_mb", "CUDA max alloc (MB)", "{:.0f}"),
]


def records_header():
    """The header and alignment lines of the records' table."""
    return markdown_header(TABLE_COLUMNS)


def record_line(record):
    """One record's line of the table; a missing value prints as "-"."""
    return markdown_row(record, TABLE_COLUMNS)


def plot(records, path):
    """Bar charts of training time, inference time and peak memory, one bar per record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['name']}\n{r['input_size']}px {r['device']} {r['amp']}" for r in records]
    memory_key = "cuda_max_allocated_mb" if all("cuda_max_allocated_mb" in r for r in records) else "peak_rss_mb"
    panels = [
        ("train_s_per_iter", "train s/iter"),
        ("infer_s_per_image", "inference s/image"),
        (memory_key, "CUDA max allocated (MB)" if memory_key.startswith("cuda") else "peak RSS (MB)"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 + 1.5 * len(records), 4))
    for axis, (key, title) in zip(axes, panels):
        axis.bar(range(len(records)), [r.get(key) or 0 for r in records], color="tab:blue")
        axis.set_xticks(range(len(records)), labels, rotation=30, ha="right", fontsize=7)
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_outputs(records, output_dir):
    """``benchmark.json`` (the records), ``benchmark.md`` (their table) and ``benchmark.png``."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "benchmark.json"), "w") as f:
        json.dump(records, f, indent=1)
    with open(os.path.join(output_dir, "benchmark.md"), "w") as f:
        f.write(markdown_table(records, TABLE_COLUMNS))
    plot(records, os.path.join(output_dir, "benchmark.png"))
