"""Every analysis of one results file, written into one folder with a markdown summary."""
import json
import os

from ..reports.markdown import markdown_table
from .confusion import confusion_matrix, plot_confusion_matrix
from .drawing import draw_image_pairs
from .image_scores import image_scores, mean_f1, rank_images
from .pr_curves import plot_pr_curves, pr_curves
from .tide import ERROR_TYPES, SPECIAL_ERROR_TYPES, plot_tide_errors, tide_errors

__all__ = ["FILES", "analyze", "write_report"]

# What the folder holds, name -> what it is.
FILES = {
    "summary.md": "this summary",
    "metrics.json": "every number of the summary",
    "tide_errors.png": "TIDE's dAP per error type",
    "pr_curves.png": "precision-recall curve per category",
    "confusion_matrix.png": "true class x predicted class, with background",
    "best_images.png": "the best-scoring images, ground truth | detections",
    "worst_images.png": "the worst-scoring images, ground truth | detections",
}

_ERROR_COLUMNS = [("error", "error", "{}"), ("dap", "dAP", "{:.2f}"), ("count", "count", "{}"), ("meaning", "what it counts", "{}")]
_CATEGORY_COLUMNS = [("name", "category", "{}"), ("objects", "objects", "{}"), ("detections", "detections", "{}"), ("ap", "AP", "{:.1f}")]
_IMAGE_COLUMNS = [("image_id", "image", "{}"), ("f1", "F1", "{:.2f}"), ("tp", "TP", "{}"), ("fp", "FP", "{}"), ("missed", "missed", "{}")]


def analyze(images, metadata, output_dir, task="bbox", iou_threshold=0.5, score_threshold=0.5, num_images=4, max_dets=100):
    """Run every analysis on ``images`` (:class:`~.records.ImageResult` list) and write
    :data:`FILES` into ``output_dir``.

    ``iou_threshold`` is the PR curves', confusion matrix's and image scores' IoU (and
    TIDE's foreground IoU); ``score_threshold`` selects the detections that the
    confusion matrix counts and the image scores and drawings use.

    Returns:
        dict: the content of ``metrics.json``.
    """
    os.makedirs(output_dir, exist_ok=True)
    class_names = list(metadata.thing_classes)
    breakdown = tide_errors(images, class_names, task, fg_iou=iou_threshold, max_dets=max_dets)
    curves = pr_curves(images, len(class_names), task, iou_threshold, max_dets)
    matrix = confusion_matrix(images, len(class_names), task, iou_threshold, score_threshold)
    scores = image_scores(images, task, iou_threshold, score_threshold)
    best, worst = rank_images(scores, min(num_images, len(scores)))

    plot_tide_errors(breakdown, os.path.join(output_dir, "tide_errors.png"))
    plot_pr_curves(curves, class_names, os.path.join(output_dir, "pr_curves.png"), iou_threshold, score_threshold)
    plot_confusion_matrix(matrix, class_names, os.path.join(output_dir, "confusion_matrix.png"), iou_threshold, score_threshold)
    for name, chosen in (("best", best), ("worst", worst)):
        if chosen:
            draw_image_pairs(images, chosen, metadata, os.path.join(output_dir, f"{name}_images.png"), score_threshold)

    detections_per_class = [sum(int((i.detections.classes == k).sum()) for i in images) for k in range(len(class_names))]
    metrics = {
        "task": task,
        "iou_threshold": iou_threshold,
        "score_threshold": score_threshold,
        "num_images": len(images),
        "num_objects": sum(int((~i.truth.crowd).sum()) for i in images),
        "num_detections": sum(len(i.detections) for i in images),
        "tide": breakdown,
        "categories": [
            {"name": name, "objects": curve.num_truth, "detections": count, "ap": None if curve.ap is None else 100 * curve.ap}
            for name, curve, count in zip(class_names, curves, detections_per_class)
        ],
        "confusion_matrix": {"labels": [*class_names, "background"], "counts": matrix.tolist()},
        "mean_image_f1": mean_f1(scores),
        "best_images": [_image_row(s) for s in best],
        "worst_images": [_image_row(s) for s in worst],
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    write_report(metrics, os.path.join(output_dir, "summary.md"))
    return metrics


def _image_row(score):
    return {"image_id": score.image_id, "f1": score.f1, "tp": score.true_positives, "fp": score.false_positives, "missed": score.missed}


def error_rows(breakdown):
    """The rows of the TIDE table: the six error types, then the two special ones."""
    rows = [
        {"error": name, "dap": breakdown["errors"][name]["dap"], "count": breakdown["errors"][name]["count"], "meaning": meaning}
        for _, name, meaning in ERROR_TYPES
    ]
    rows += [
        {"error": name, "dap": breakdown["special_errors"][name]["dap"], "meaning": meaning}
        for _, name, meaning in SPECIAL_ERROR_TYPES
    ]
    return rows


def write_report(metrics, md_path):
    """``summary.md``: the TIDE table, per-category AP, the image ranking and the figures."""
    tide = metrics["tide"]
    iou = round(100 * metrics["iou_threshold"])
    lines = [
        f"# Error analysis ({metrics['task']})",
        "",
        f"{metrics['num_images']} images, {metrics['num_objects']} objects, {metrics['num_detections']} detections.",
        "",
        f"## TIDE errors: AP{iou} {tide['ap']:.2f}",
        "",
        f"Foreground IoU t_f = {tide['fg_iou']:g}, background IoU t_b = {tide['bg_iou']:g}. dAP: the AP{iou} "
        "gained if an oracle fixed every error of that type alone (the types overlap, so the dAPs do not add up).",
        "",
        markdown_table(error_rows(tide), _ERROR_COLUMNS, right_align=("dap", "count")),
        "![TIDE errors](tide_errors.png)",
        "",
        f"## Precision-recall at IoU {metrics['iou_threshold']:g}",
        "",
        markdown_table(metrics["categories"], _CATEGORY_COLUMNS, missing="-", right_align=("objects", "detections", "ap")),
        f"![PR curves](pr_curves.png)\n\nThe dot on each curve: the detections scoring at least {metrics['score_threshold']:g}.",
        "",
        f"## Confusion matrix (IoU >= {metrics['iou_threshold']:g}, score >= {metrics['score_threshold']:g})",
        "",
        "Detections are matched to objects by IoU whatever their class. Background row: detections on no object; "
        "background column: objects no detection found.",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        f"## Best and worst images (per-image F1 at IoU {metrics['iou_threshold']:g}, score >= {metrics['score_threshold']:g})",
        "",
        f"F1 = 2 TP / (2 TP + FP + missed), matching within each class; mean over the images {metrics['mean_image_f1']:.3f}.",
        "",
    ]
    for name in ("best", "worst"):
        rows = metrics[f"{name}_images"]
        if rows:
            lines += [f"### {name.capitalize()}", "", markdown_table(rows, _IMAGE_COLUMNS, right_align=("f1", "tp", "fp", "missed")),
                      f"![{name} images]({name}_images.png)", ""]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    return md_path
