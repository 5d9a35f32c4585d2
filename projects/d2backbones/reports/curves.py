"""Loss and AP curves from detectron2's ``metrics.json``."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    """The records of a ``metrics.json`` (one JSON object per line)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(metrics_path, png_path, title="training"):
    """Plot total loss (left) and bbox/segm AP (right) against iteration into ``png_path``."""
    records = read_metrics(metrics_path)
    losses = [(r["iteration"], r["total_loss"]) for r in records if "total_loss" in r]
    figure, (loss_axis, ap_axis) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        loss_axis.plot(*zip(*losses), label="total_loss")
    loss_axis.set_xlabel("iteration")
    loss_axis.set_ylabel("loss")
    loss_axis.set_title("training loss")
    for key, label in (("bbox/AP", "bbox AP"), ("bbox/AP50", "bbox AP50"), ("segm/AP", "segm AP")):
        points = [(r["iteration"], r[key]) for r in records if key in r]
        if points:
            ap_axis.plot(*zip(*points), marker="o", label=label)
    ap_axis.set_xlabel("iteration")
    ap_axis.set_ylabel("AP (val)")
    ap_axis.set_title("validation AP")
    for axis in (loss_axis, ap_axis):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
