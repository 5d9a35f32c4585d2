"""TIDE's error breakdown (Bolya et al., ECCV 2020) of one model's detections, by ``tidecv``.

TIDE sorts every false positive and every missed object into one error type, at a
foreground IoU ``t_f`` (0.5) and a background IoU ``t_b`` (0.1), with IoU_max the
detection's largest IoU with a ground-truth object:

* classification: IoU_max >= t_f with an object of another class;
* localisation: t_b <= IoU_max < t_f with an object of its class;
* both: t_b <= IoU_max < t_f with an object of another class only;
* duplicate: IoU_max >= t_f with an object of its class already matched by a
  higher-scoring detection;
* background: IoU_max < t_b with every object;
* missed: an object no detection matched, that no classification or localisation
  error points at either (a "both" error, which the oracle removes, does not cover it).

The weight of an error type is dAP: the AP50 gained when an oracle fixes all errors
of that type alone (a wrong class or box corrected, a duplicate or background
detection removed, a missed object dropped from the ground truth). ``tidecv`` is
the paper's own implementation; its json readers need a ``segmentation`` on every
ground-truth object, so the data is handed to its ``Data`` objects here instead.
"""
import matplotlib
from tidecv import TIDE, Data

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["ERROR_TYPES", "SPECIAL_ERROR_TYPES", "plot_tide_errors", "tide_errors"]

# (tidecv's short name, our name, what it counts), in TIDE's order.
ERROR_TYPES = (
    ("Cls", "classification", "box right (IoU >= t_f), class wrong"),
    ("Loc", "localisation", "class right, box off (t_b <= IoU < t_f)"),
    ("Both", "both", "class wrong and box off (t_b <= IoU < t_f)"),
    ("Dupe", "duplicate", "class and box right, object already matched by a higher score"),
    ("Bkg", "background", "no object near (IoU < t_b with every object)"),
    ("Miss", "missed", "object not detected, nor covered by a classification or localisation error"),
)
SPECIAL_ERROR_TYPES = (
    ("FalsePos", "false positives", "every false positive removed"),
    ("FalseNeg", "false negatives", "every missed object dropped"),
)


def _tide_data(name, images, class_names, task, max_dets, truth):
    data = Data(name, max_dets=max_dets)
    for class_id, class_name in enumerate(class_names):
        data.add_class(class_id, class_name)
    for image in images:
        data.add_image(image.image_id, image.file_name)
        objects = image.truth if truth else image.detections
        for i in range(len(objects)):
            box = objects.boxes[i].tolist() if task == "bbox" else None
            mask = objects.masks[i] if task == "segm" else None
            class_id = int(objects.classes[i])
            if not truth:
                data.add_detection(image.image_id, class_id, float(objects.scores[i]), box, mask)
            elif objects.crowd[i]:
                data.add_ignore_region(image.image_id, class_id, box, mask)
            else:
                data.add_ground_truth(image.image_id, class_id, box, mask)
    return data


def tide_errors(images, class_names, task="bbox", fg_iou=0.5, bg_iou=0.1, max_dets=100):
    """TIDE's error breakdown of ``images`` (:class:`~.records.ImageResult` list).

    Returns:
        dict: ``ap`` (TIDE's AP at ``fg_iou``, in percent; classes with neither
        ground truth nor detections left out), ``errors`` and ``special_errors``
        (our name -> ``{"dap": float, "count": int}``; counts only for ``errors``),
        and the thresholds ``fg_iou`` / ``bg_iou``.
    """
    # TIDE() sets seaborn's theme and a dpi in matplotlib's global rcParams: undone on leaving.
    with matplotlib.rc_context():
        tide = TIDE(pos_threshold=fg_iou, background_threshold=bg_iou, mode=TIDE.BOX if task == "bbox" else TIDE.MASK)
    truth = _tide_data("truth", images, class_names, task, max_dets, truth=True)
    detections = _tide_data("detections", images, class_names, task, max_dets, truth=False)
    run = tide.evaluate(truth, detections, name="detections")
    main = tide.get_main_errors()["detections"]
    special = tide.get_special_errors()["detections"]
    # tidecv files a detection inside a crowd region (left out of AP) under an error type
    # too, mostly "background": such detections are not counted here.
    counts = {
        error_type.short_name: sum(getattr(e, "pred", {}).get("used", False) is not None for e in errors)
        for error_type, errors in run.error_dict.items()
    }
    return {
        "ap": float(run.ap),
        "fg_iou": fg_iou,
        "bg_iou": bg_iou,
        "errors": {name: {"dap": float(main[short]), "count": int(counts[short])} for short, name, _ in ERROR_TYPES},
        "special_errors": {name: {"dap": float(special[short])} for short, name, _ in SPECIAL_ERROR_TYPES},
    }


def plot_tide_errors(breakdown, png_path):
    """Bars of each error type's dAP in ``breakdown`` (from :func:`tide_errors`)."""
    names = [name for _, name, _ in ERROR_TYPES] + [name for _, name, _ in SPECIAL_ERROR_TYPES]
    values = [breakdown["errors"][name]["dap"] for _, name, _ in ERROR_TYPES]
    values += [breakdown["special_errors"][name]["dap"] for _, name, _ in SPECIAL_ERROR_TYPES]
    colours = ["C0"] * len(ERROR_TYPES) + ["C1"] * len(SPECIAL_ERROR_TYPES)
    figure, axis = plt.subplots(figsize=(6.0, 3.2))
    axis.barh(range(len(names)), values, color=colours)
    axis.set_yticks(range(len(names)), names)
    axis.invert_yaxis()
    for y, value in enumerate(values):
        axis.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    axis.set_xlabel("dAP: AP gained if fixed by an oracle")
    axis.set_title(f"TIDE errors (AP{round(100 * breakdown['fg_iou'])} {breakdown['ap']:.1f})", fontsize=10)
    axis.set_xlim(0, max(values + [1.0]) * 1.2)
    figure.tight_layout()
    figure.savefig(png_path, dpi=80)
    plt.close(figure)
    return png_path
