"""benchmarks/plot_cost_growth.py: the linear + quadratic memory fit, its table and plot."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plot_cost_growth.py"
spec = importlib.util.spec_from_file_location("plot_cost_growth", SCRIPT)
plot_cost_growth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_cost_growth)


def rows_with(ours_b, theirs_b, sizes=(512, 768, 1024, 1280)):
    """Rows as benchmarks/vitdet_vs_detectron2.py writes them, memory = N + b N^2."""
    rows = []
    for size in sizes:
        n = plot_cost_growth.tokens(size)
        rows.append({"scope": "global", "input_size": size,
                     "wall_s": {"ours": 0.001 * n, "detectron2": 0.002 * n},
                     "peak_rss_growth_mb": {"ours": n + ours_b * n * n, "detectron2": n + theirs_b * n * n}})
    return rows


def test_fit_recovers_the_quadratic_term_and_its_share(tmp_path):
    rows = rows_with(ours_b=0.0, theirs_b=1e-3)
    fits = {fit["side"]: fit for fit in plot_cost_growth.fit_rows(rows)}
    assert fits["ours"]["quadratic_mb_per_token2"] == pytest.approx(0.0, abs=1e-9)
    assert fits["detectron2"]["quadratic_mb_per_token2"] == pytest.approx(1e-3)
    assert fits["detectron2"]["linear_mb_per_token"] == pytest.approx(1.0)
    largest = plot_cost_growth.tokens(1280)
    assert fits["detectron2"]["quadratic_share_at_largest"] == pytest.approx(1e-3 * largest / (1 + 1e-3 * largest))
    assert fits["detectron2"]["constant_mb"] == pytest.approx(0.0, abs=1e-6)
    assert fits["detectron2"]["attention_matrices_kept"] == pytest.approx(1e-3 / (12 * 4 / 2**20))
    assert fits["ours"]["memory_growth_largest_over_smallest"] == pytest.approx(largest / plot_cost_growth.tokens(512))

    results = tmp_path / "cost.json"
    results.write_text(json.dumps({"results": rows}))
    image = tmp_path / "cost.png"
    plot_cost_growth.plot(rows, str(image))
    assert image.stat().st_size > 10_000
    table = plot_cost_growth.markdown(rows, plot_cost_growth.fit_rows(rows))
    assert "| global | 1280 | 6400 |" in table and "| global | detectron2 | 0 | 1.000 | 1.00e-03 |" in table


def test_fewer_than_three_sizes_give_no_fit():
    assert plot_cost_growth.fit_rows(rows_with(0.0, 1e-3, sizes=(512, 1024))) == []
    # Three sizes fix c + a n + b n^2 exactly: 5 + n + n^2.
    assert np.allclose(plot_cost_growth.linear_quadratic_fit(np.array([1.0, 2.0, 3.0]), np.array([7.0, 11.0, 17.0])),
                       (5.0, 1.0, 1.0))


def test_cli_plots_a_results_file_and_names_a_bad_one_in_one_line(tmp_path):
    results = tmp_path / "cost.json"
    results.write_text(json.dumps({"results": rows_with(0.0, 1e-3)}))
    image = tmp_path / "cost.png"
    done = subprocess.run([sys.executable, str(SCRIPT), str(results), "--output", str(image)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert image.exists() and "| global | 1280 | 6400 |" in done.stdout
    bad = tmp_path / "not_results.json"
    bad.write_text("{}")
    for path in (bad, tmp_path / "missing.json"):
        refused = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in refused.stderr


def test_whole_detector_reports_become_detector_rows(tmp_path):
    """A timed whole_detector.py report gives its training step; a --memory-only one
    (no rows) gives its memory at the report's input size; ours alone plots without a ratio."""
    timed = {"input_size": 512, "memory": {}, "results": [
        {"detector": "mask_rcnn", "pass": "train", "input_size": 512, "wall_s": {"ours": 2.0, "detectron2": 4.0},
         "peak_rss_growth_mb": {"ours": 100.0, "detectron2": 300.0}},
        {"detector": "mask_rcnn", "pass": "inference", "input_size": 512, "wall_s": {"ours": 1.0, "detectron2": 2.0}},
    ]}
    memory_only = {"input_size": 768, "results": [],
                   "memory": {"mask_rcnn": {"peak_rss_growth_mb": {"ours": 200.0, "detectron2": 700.0}}}}
    ours_alone = {"input_size": 1280, "memory": {}, "results": [
        {"detector": "mask_rcnn", "pass": "train", "input_size": 1280, "wall_s": {"ours": 9.0},
         "peak_rss_growth_mb": {"ours": 400.0}},
    ]}
    rows = [row for report in (timed, memory_only, ours_alone) for row in plot_cost_growth.cost_rows(report)]
    assert [(row["scope"], row["input_size"]) for row in rows] == [("detector", 512), ("detector", 768), ("detector", 1280)]
    assert rows[0]["wall_s"] == {"ours": 2.0, "detectron2": 4.0} and rows[1]["wall_s"] == {}
    table = plot_cost_growth.markdown(rows, plot_cost_growth.fit_rows(rows))
    assert "| detector | 512 | 1024 | 2.00 | 4.00 | 0.50 | 100 | 300 | 0.33 |" in table
    assert "| detector | 1280 | 6400 | 9.00 | - | - | 400 | - | - |" in table
    plot_cost_growth.plot(rows, str(tmp_path / "detector.png"))
    assert (tmp_path / "detector.png").stat().st_size > 0
