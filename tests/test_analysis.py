"""Error analysis of a results file (d2backbones.analysis, tools/analyze_results.py): TIDE's
error types and dAPs on hand-made cases, PR curves against pycocotools' COCOeval, the
confusion matrix, the image ranking, and the tool end to end on tiny synthetic data."""
import contextlib
import copy
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import load_tool
from detectron2.data.catalog import Metadata
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from d2backbones.analysis.confusion import confusion_matrix
from d2backbones.analysis.image_scores import image_scores, rank_images
from d2backbones.analysis.pr_curves import pr_curves
from d2backbones.analysis.records import ImageResult, Objects, pair_results_with_dataset
from d2backbones.analysis.report import FILES
from d2backbones.analysis.tide import tide_errors
from d2backbones.data.coco_records import coco_to_dataset_dicts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
CLASSES = ["c0", "c1", "c2"]


def objects(boxes, classes, scores=None, crowd=None):
    """Objects from XYWH boxes and class ids (scores 1, no crowd unless given)."""
    n = len(classes)
    return Objects(
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, dtype=np.int64),
        np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64),
        np.zeros(n, dtype=bool) if crowd is None else np.asarray(crowd, dtype=bool),
    )


def image(truth, detections, image_id=1):
    return ImageResult(image_id, f"{image_id}.png", 400, 400, truth, detections)


# One detection of each TIDE error type, and one right one. Objects A-E (class):
# A (c0) found; B (c1) boxed exactly but called c0; C (c0) boxed at IoU 30/70;
# D (c2) never detected; E (c1) boxed at IoU 30/70 and called c2.
TRUTH = objects(
    [[10, 10, 50, 50], [100, 10, 50, 50], [200, 10, 50, 50], [300, 300, 50, 50], [10, 200, 50, 50]], [0, 1, 0, 2, 1]
)
DETECTIONS = objects(
    [
        [10, 10, 50, 50],    # right: A
        [100, 10, 50, 50],   # classification: B, as c0
        [220, 10, 50, 50],   # localisation: C at IoU 0.43
        [12, 12, 50, 50],    # duplicate: A again (IoU 0.85), lower score
        [30, 200, 50, 50],   # both: E at IoU 0.43, as c2
        [300, 150, 40, 40],  # background: touches nothing
    ],
    [0, 0, 0, 0, 2, 1],
    scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
)
EXPECTED_TYPES = {"classification": 1, "localisation": 1, "both": 1, "duplicate": 1, "background": 1, "missed": 2}
# COCO's 101-point AP of a curve that reaches recall 1/2 at precision 1 and stops.
HALF = 51 / 101


def test_tide_sorts_each_error_into_its_type():
    breakdown = tide_errors([image(TRUTH, DETECTIONS)], CLASSES)
    # D is missed, and so is E: a "both" error is removed by TIDE's oracle, not
    # turned into a match, so it covers no object.
    assert {name: e["count"] for name, e in breakdown["errors"].items()} == EXPECTED_TYPES
    # c0 finds A (precision 1 at recall 1/2); c1 and c2 find nothing.
    assert breakdown["ap"] == pytest.approx(100 * HALF / 3)
    errors = {name: e["dap"] for name, e in breakdown["errors"].items()}
    # Fixed class: c1 finds B at precision 1 (recall 1/2).
    assert errors["classification"] == pytest.approx(100 * HALF / 3)
    # Fixed box: c0 reaches recall 1 at precision 2/3 (A, the c1-turned-c0 miss, C).
    assert errors["localisation"] == pytest.approx(100 * (50 / 101) * (2 / 3) / 3)
    # Each of these follows every true positive of its class, or its class has none.
    assert errors["duplicate"] == errors["background"] == errors["both"] == errors["missed"] == 0


def test_tide_dap_of_background_and_missed():
    one = [[10, 10, 50, 50]]
    # A background detection above the one true positive: AP 50, 100 without it.
    background = image(objects(one, [0]), objects([[300, 300, 40, 40], *one], [0, 0], scores=[0.9, 0.8]))
    assert tide_errors([background], CLASSES)["errors"]["background"]["dap"] == pytest.approx(50)
    # One of two objects found: AP 100 * 51/101, 100 once the missed one is dropped.
    missed = image(objects([*one, [200, 200, 50, 50]], [0, 0]), objects(one, [0], scores=[0.9]))
    breakdown = tide_errors([missed], CLASSES)
    assert breakdown["errors"]["missed"] == {"dap": pytest.approx(100 - 100 * HALF), "count": 1}


def test_confusion_matrix_counts():
    matrix = confusion_matrix([image(TRUTH, DETECTIONS)], len(CLASSES), score_threshold=0.3)
    expected = [
        # c0 c1 c2 background   (predicted)
        [1, 0, 0, 1],  # c0: A found; C missed (its detection is at IoU 0.43)
        [1, 0, 0, 1],  # c1: B taken by a c0 detection; E missed
        [0, 0, 0, 1],  # c2: D missed
        [2, 1, 1, 0],  # background: the box-off and duplicate c0, the background c1, the "both" c2
    ]
    np.testing.assert_array_equal(matrix, expected)
    # At 0.55 the last two detections drop out of the background row.
    above = confusion_matrix([image(TRUTH, DETECTIONS)], len(CLASSES), score_threshold=0.55)
    np.testing.assert_array_equal(above[3], [2, 0, 0, 0])


def test_crowd_regions_are_not_counted():
    truth = objects([[10, 10, 50, 50], [200, 200, 100, 100]], [0, 1], crowd=[False, True])
    detections = objects([[10, 10, 50, 50], [220, 220, 40, 40]], [0, 1], scores=[0.9, 0.8])
    matrix = confusion_matrix([image(truth, detections)], len(CLASSES))
    # The detection inside the crowd region is neither background nor a match.
    assert matrix[0, 0] == 1 and matrix.sum() == 1
    breakdown = tide_errors([image(truth, detections)], CLASSES)
    assert breakdown["ap"] == 100 and not any(e["count"] for e in breakdown["errors"].values())


def test_image_scores_and_ranking():
    perfect = image(TRUTH, copy.deepcopy(TRUTH), image_id=7)
    scores = image_scores([image(TRUTH, DETECTIONS), perfect], score_threshold=0.3)
    counts = (scores[0].true_positives, scores[0].false_positives, scores[0].missed)
    assert counts == (1, 5, 4)
    assert scores[0].f1 == pytest.approx(2 / 11)
    best, worst = rank_images(scores, 1)
    assert (best[0].image_id, best[0].f1, worst[0].image_id) == (7, 1.0, 1)


def random_coco(seed=0, num_images=6):
    """A COCO ground-truth dict and results list: jittered copies of the objects (some
    wrong class), random false positives, a crowd region, an image without objects."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 200, "width": 200})
        for _ in range(0 if image_id == num_images else rng.integers(1, 5)):
            x, y, w, h = rng.uniform(0, 120, 2).tolist() + rng.uniform(15, 80, 2).tolist()
            category = int(rng.integers(1, 4))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            for _ in range(rng.integers(0, 3)):
                jitter = (rng.normal(0, 6, 4) * [1, 1, 0.5, 0.5]).tolist()
                wrong = rng.random() < 0.2
                results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)) if wrong else category,
                                "bbox": [x + jitter[0], y + jitter[1], max(w + jitter[2], 2), max(h + jitter[3], 2)]})
        for _ in range(rng.integers(0, 3)):
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)),
                            "bbox": rng.uniform(0, 100, 2).tolist() + rng.uniform(10, 60, 2).tolist()})
    annotations.append({"id": len(annotations) + 1, "image_id": 1, "category_id": 1,
                        "bbox": [100, 100, 100, 100], "area": 10000, "iscrowd": 1})
    results.append({"image_id": 1, "category_id": 1, "bbox": [120, 120, 50, 50]})
    for result, score in zip(results, rng.permutation(len(results))):
        result["score"] = float(score + 1) / len(results)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def cocoeval_ap50(coco_dict, results):
    """pycocotools' bbox AP at IoU 0.5 of each category (None where it has no objects)."""
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = copy.deepcopy(coco_dict)
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(copy.deepcopy(results)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, 2]  # IoU 0.5, area all, 100 detections
    return [None if (p < 0).all() else float(p.mean()) for p in precision.T]


def paired(coco_dict, results):
    metadata = Metadata(name="random", thing_classes=CLASSES, thing_dataset_id_to_contiguous_id={1: 0, 2: 1, 3: 2})
    return pair_results_with_dataset(results, coco_to_dataset_dicts(copy.deepcopy(coco_dict), "/images"), metadata)


@pytest.mark.parametrize("seed", [0, 1])
def test_pr_curves_match_cocoeval(seed):
    coco_dict, results = random_coco(seed)
    curves = pr_curves(paired(coco_dict, results), len(CLASSES))
    expected = cocoeval_ap50(coco_dict, results)
    assert [c.ap is None for c in curves] == [e is None for e in expected]
    for curve, ap in zip(curves, expected):
        if ap is not None:
            assert curve.ap == pytest.approx(ap, abs=1e-9)
            assert np.all(np.diff(curve.recall) >= 0)
            assert np.all(np.diff(curve.scores) <= 0)
    # The case is not degenerate: some categories are neither perfect nor zero.
    assert any(0.05 < ap < 0.95 for ap in expected if ap is not None)


def test_pairing_rejects_results_of_another_dataset():
    coco_dict, results = random_coco()
    with pytest.raises(ValueError, match="not in dataset 'random'"):
        paired(coco_dict, [*results, {**results[0], "image_id": 999}])
    with pytest.raises(ValueError, match=r"category ids \[9\]"):
        paired(coco_dict, [*results, {**results[0], "category_id": 9}])


@pytest.fixture(scope="module")
def one_wrong_class(tiny_shapes, tmp_path_factory):
    """Results that are the tiny val split's own objects (distinct scores), but for one
    object given the next class: (results path, (image id, true class, given class))."""
    json_path, _ = tiny_shapes["val"]
    with open(json_path) as f:
        annotations = json.load(f)["annotations"]
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                "score": 1 - i / (2 * len(annotations))} for i, a in enumerate(annotations)]
    wrong = results[len(results) // 2]
    true_class = wrong["category_id"]
    wrong["category_id"] = true_class % 4 + 1
    path = tmp_path_factory.mktemp("results") / "coco_instances_results.json"
    path.write_text(json.dumps(results))
    return str(path), (wrong["image_id"], true_class, wrong["category_id"])


def test_analyze_results_cli(tiny_shapes, one_wrong_class, tmp_path):
    results, (image_id, true_class, given_class) = one_wrong_class
    json_path, image_dir = tiny_shapes["val"]
    command = [sys.executable, os.path.join(REPO, "tools", "analyze_results.py"), "--results", results,
               "--dataset", f"tiny_val={json_path}:{image_dir}", "--output", str(tmp_path), "--num-images", "2"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == sorted(FILES)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    counts = {name: e["count"] for name, e in metrics["tide"]["errors"].items()}
    assert counts == {"classification": 1, "localisation": 0, "both": 0, "duplicate": 0, "background": 0, "missed": 0}
    matrix = np.array(metrics["confusion_matrix"]["counts"])
    off_diagonal = matrix - np.diag(np.diag(matrix))
    # Contiguous ids are the synthetic category ids minus 1.
    assert off_diagonal.sum() == 1 and off_diagonal[true_class - 1, given_class - 1] == 1
    assert metrics["worst_images"][0]["image_id"] == image_id and metrics["worst_images"][0]["f1"] < 1
    assert metrics["best_images"][0]["f1"] == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "| classification | " in summary and "![confusion matrix](confusion_matrix.png)" in summary


def test_analyze_results_foreign_images_are_one_line(tiny_shapes, tmp_path, capsys):
    json_path, image_dir = tiny_shapes["val"]
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": 10**6, "category_id": 1, "bbox": [0, 0, 9, 9], "score": 0.9}]))
    with pytest.raises(SystemExit) as exit_info:
        load_tool("analyze_results").main(
            ["--results", str(results), "--dataset", f"tiny_val={json_path}:{image_dir}", "--output", str(tmp_path / "out")]
        )
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pass the dataset the results were made on" in lines[0]
    assert not (tmp_path / "out").exists()
