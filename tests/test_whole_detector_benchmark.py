"""benchmarks/whole_detector.py: our ViTDet-B detectors equal detectron2's with the same
weights (the agreement the timings rest on), and detections are matched by box, not rank.
The runs use ``--smoke`` (both sides' ViT and RoI counts shrunk alike: the same code
paths and agreement checks in seconds). No timing is asserted."""
import json
import subprocess
import sys

import torch
from conftest import load_script
from detectron2.structures import Boxes, Instances


def detections(boxes, scores, classes):
    instances = Instances((64, 64))
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    instances.scores = torch.tensor(scores)
    instances.pred_classes = torch.tensor(classes)
    instances.pred_masks = torch.zeros(len(scores), 64, 64, dtype=torch.bool)
    return instances


def test_near_tied_detections_at_swapped_ranks_still_match():
    benchmark = load_script("benchmarks/whole_detector.py")
    ours = detections([[0, 0, 10, 10], [40, 40, 60, 60], [1, 1, 5, 5]], [0.9, 0.5, 0.5], [1, 2, 2])
    theirs = detections([[0, 0, 10, 10], [1, 1, 5, 5], [40, 40, 60.5, 60]], [0.9, 0.5, 0.5], [1, 2, 2])
    agreement = benchmark.detection_agreement([ours], [theirs])
    assert agreement["detections_one_to_one"]
    assert agreement["detections_reordered"] == 2
    assert agreement["box_max_abs_diff"] == 0.5

    other_class = detections([[0, 0, 10, 10]], [0.9], [3])
    assert not benchmark.detection_agreement([ours], [other_class])["detections_one_to_one"]


def test_mask_rcnn_agrees_with_detectron2s(tmp_path):
    output = tmp_path / "whole_detector.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/whole_detector.py", "--detectors", "mask_rcnn", "--input-size", "128", "--smoke",
         "--rounds", "1", "--no-memory", "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    train, infer = json.loads(output.read_text())["results"]
    for row in (train, infer):
        assert row["keys_only_detectron2"] == [] and row["keys_only_ours"] == []
        assert row["wall_s"]["ours"] > 0 and row["wall_s"]["detectron2"] > 0
    assert train["loss_max_rel_diff"] < 1e-4
    assert train["grad_rel_norm_err"] < 1e-3
    assert infer["detections_one_to_one"]
    assert infer["box_max_abs_diff"] < 1e-2 and infer["score_max_abs_diff"] < 1e-4
    assert "| mask_rcnn | 128 | train |" in completed.stdout


def test_memory_only_measures_both_sides_and_times_nothing(tmp_path):
    output = tmp_path / "memory.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/whole_detector.py", "--detectors", "mask_rcnn", "--input-size", "128", "--smoke",
         "--memory-only", "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(output.read_text())
    growth = report["memory"]["mask_rcnn"]["peak_rss_growth_mb"]
    assert growth["ours"] > 0 and growth["detectron2"] > 0
    assert report["results"] == []
    refused = subprocess.run(
        [sys.executable, "benchmarks/whole_detector.py", "--memory-only", "--no-memory"],
        capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode == 2 and "exclude each other" in refused.stderr
    # One line names the problem (import-time library warnings may precede it), no traceback.
    assert refused.stderr.strip().splitlines()[-1].startswith("whole_detector: --memory-only")
    assert "Traceback" not in refused.stderr


def test_ours_alone_is_timed_and_measured_without_a_comparison(tmp_path):
    """For sizes where detectron2's step would not fit in memory: no reference is built,
    so no agreement and no ratio are reported, only our side's figures."""
    output = tmp_path / "ours.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/whole_detector.py", "--detectors", "mask_rcnn", "--input-size", "128", "--smoke",
         "--rounds", "1", "--implementations", "ours", "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["input_size"] == 128 and report["smoke"] is True
    assert list(report["memory"]["mask_rcnn"]["peak_rss_growth_mb"]) == ["ours"]
    train, infer = report["results"]
    for row in (train, infer):
        assert list(row["wall_s"]) == ["ours"] and row["wall_s"]["ours"] > 0
        assert "time_ratio" not in row and "loss_max_rel_diff" not in row
    assert train["peak_rss_growth_mb"]["ours"] > 0 and "memory_ratio" not in train
    assert "| mask_rcnn | 128 | train | not compared (one side run) |" in completed.stdout
