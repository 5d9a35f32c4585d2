"""The comparison's outputs: one row per (family, labels, init) with the box AP over
seeds and the compute spent, as ``fair_compare.json``, ``fair_compare.md`` and
``fair_compare.png`` (box AP against total CPU hours, pretraining included)."""
import json
import os
import statistics

from ..inference.results import read_results
from ..reports.markdown import markdown_table
from .arms import ARMS
from .plan import INITS
from .runner import run_record

__all__ = ["TABLE_COLUMNS", "box_ap_by_pair", "collect", "plot", "summarize", "write_report"]

TABLE_COLUMNS = [
    ("family", "family", "{}"),
    ("labels", "labels", "{:.0%}"),
    ("init", "init", "{}"),
    ("seeds", "seeds", "{}"),
    ("box_ap", "box AP", "{:.2f}"),
    ("box_ap_spread", "AP min-max", "{}"),
    ("box_ap50", "AP50", "{:.2f}"),
    ("gain", "gain (AP)", "{:+.2f}"),
    ("pretrain_images", "pretrain images", "{:,}"),
    ("pretrain_cpu_h", "pretrain CPU-h", "{:.2f}"),
    ("finetune_cpu_h", "fine-tune CPU-h", "{:.2f}"),
    ("total_cpu_h", "total CPU-h", "{:.2f}"),
    ("total_wall_h", "total wall-h", "{:.2f}"),
]


def collect(plan, runs):
    """The measurements of the finished fine-tuning ``runs``: a list of dicts with family,
    fraction, init, seed, box AP / AP50 and the run's and its pretraining's cost."""
    measured = []
    for run in runs:
        record = run_record(run)
        results_path = os.path.join(run.output_dir, "results.json")
        if run.kind != "finetune" or record is None or not os.path.isfile(results_path):
            continue
        bbox = read_results(results_path)["summary"]["bbox"]
        pretrain = run_record(plan.pretrain_run(run.family)) if run.init == "pretrained" else None
        measured.append({
            "family": run.family, "fraction": run.label_fraction, "init": run.init, "seed": run.seed,
            "box_ap": bbox["AP"], "box_ap50": bbox["AP50"],
            "finetune_cpu_s": record["cpu_s"], "finetune_wall_s": record["wall_s"],
            "pretrain_cpu_s": pretrain["cpu_s"] if pretrain else 0.0,
            "pretrain_wall_s": pretrain["wall_s"] if pretrain else 0.0,
        })
    return measured


def summarize(plan, measured):
    """One row per (family, fraction, init): means over seeds, spread, gain over scratch."""
    rows = []
    for family in plan.families:
        for fraction in plan.label_fractions:
            mean_ap = {}
            for init in INITS:
                group = [m for m in measured if (m["family"], m["fraction"], m["init"]) == (family, fraction, init)]
                if not group:
                    continue
                aps = [m["box_ap"] for m in group]
                mean_ap[init] = statistics.mean(aps)
                pretrain_cpu, pretrain_wall = group[0]["pretrain_cpu_s"], group[0]["pretrain_wall_s"]
                finetune_cpu = statistics.mean(m["finetune_cpu_s"] for m in group)
                finetune_wall = statistics.mean(m["finetune_wall_s"] for m in group)
                rows.append({
                    "family": family, "method": ARMS[family].method if init == "pretrained" else None,
                    "labels": fraction, "init": init, "seeds": len(group),
                    "box_ap": mean_ap[init], "box_ap_all": aps,
                    "box_ap_spread": f"{min(aps):.1f}-{max(aps):.1f}" if len(aps) > 1 else "-",
                    "box_ap50": statistics.mean(m["box_ap50"] for m in group),
                    "pretrain_images": plan.pretrain_images_seen if init == "pretrained" else 0,
                    "pretrain_cpu_h": pretrain_cpu / 3600, "finetune_cpu_h": finetune_cpu / 3600,
                    "total_cpu_h": (pretrain_cpu + finetune_cpu) / 3600,
                    "total_wall_h": (pretrain_wall + finetune_wall) / 3600,
                })
            if len(mean_ap) == 2:
                rows[-1]["gain"] = mean_ap["pretrained"] - mean_ap["scratch"]
    return rows


def box_ap_by_pair(measured):
    """(family, fraction, init) -> box APs, the input of :meth:`~.plan.FairComparePlan.extra_seeds`."""
    pairs = {}
    for m in measured:
        pairs.setdefault((m["family"], m["fraction"], m["init"]), []).append(m["box_ap"])
    return pairs


def plot(rows, path):
    """Box AP against total CPU hours; one colour per family, hollow = from scratch,
    filled = pretrained, a line from each scratch point to its pretrained one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    colours = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    markers = {1.0: "o", 0.1: "s"}
    for row in rows:
        colour = colours[row["family"]]
        filled = row["init"] == "pretrained"
        axis.scatter(row["total_cpu_h"], row["box_ap"], s=50, marker=markers.get(row["labels"], "^"),
                     facecolors=colour if filled else "none", edgecolors=colour,
                     label=f"{row['family']} {row['labels']:.0%} {row['init']}")
        if len(row["box_ap_all"]) > 1:
            axis.vlines(row["total_cpu_h"], min(row["box_ap_all"]), max(row["box_ap_all"]), colors=colour)
    for scratch in (r for r in rows if r["init"] == "scratch"):
        pretrained = [r for r in rows if r["init"] == "pretrained" and (r["family"], r["labels"]) ==
                      (scratch["family"], scratch["labels"])]
        for r in pretrained:
            axis.plot([scratch["total_cpu_h"], r["total_cpu_h"]], [scratch["box_ap"], r["box_ap"]],
                      color=colours[r["family"]], linewidth=0.8, linestyle=":")
    axis.set_xlabel("total compute, CPU hours (pretraining + fine-tuning)")
    axis.set_ylabel("box AP (synthetic val)")
    axis.set_title("from scratch (hollow) vs MIM-pretrained (filled); square = 10% labels")
    axis.legend(fontsize=7, loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(plan, rows, measured):
    """``fair_compare.json`` (settings, rows, every run), ``.md`` (the table) and ``.png``; returns the md path."""
    os.makedirs(plan.output_dir, exist_ok=True)
    settings = {
        "pool": f"synthetic_unlabeled_{plan.pool_size}", "pretrain_iters": plan.pretrain_iters,
        "pretrain_batch": plan.pretrain_batch, "pretrain_images_seen": plan.pretrain_images_seen,
        "target": plan.target, "finetune_iters": plan.finetune_iters, "seeds": plan.seeds,
    }
    with open(os.path.join(plan.output_dir, "fair_compare.json"), "w") as f:
        json.dump({"settings": settings, "rows": rows, "runs": measured}, f, indent=1)
    md_path = os.path.join(plan.output_dir, "fair_compare.md")
    with open(md_path, "w") as f:
        f.write(f"Pool {settings['pool']}; {plan.pretrain_images_seen:,} images seen per pretraining "
                f"({plan.pretrain_iters} x {plan.pretrain_batch}), target {plan.target}; "
                f"fine-tuning {plan.finetune_iters} iterations.\n\n")
        f.write(markdown_table(rows, TABLE_COLUMNS))
    if rows:
        plot(rows, os.path.join(plan.output_dir, "fair_compare.png"))
    return md_path
