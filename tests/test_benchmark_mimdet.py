"""benchmarks/mimdet_sample_ratio.py on the tiny MIMDet: token counts, JSON and table (no timing asserted).

The script runs as a subprocess, as from the command line; its step check is
``d2backbones.benchmarking.check_step``."""
import json
import math
import os
import subprocess
import sys

import pytest

from d2backbones.benchmarking import check_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks/mimdet_sample_ratio.py")


def run_script(*args, check=True):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("benchmark") / "mimdet_sample_ratio.json"
    run_script("--model", "tiny", "--rounds", "1", "--no-memory", "--output", str(path))
    return path


@pytest.fixture(scope="module")
def rows(report_path):
    with open(report_path) as f:
        return json.load(f)["results"]


def test_json_has_the_three_ratios_and_the_vitdet_reference(rows):
    assert [row["sample_ratio"] for row in rows] == [0.25, 0.5, 1.0, None]
    assert [row["detector"] for row in rows] == ["MIMDet tiny"] * 3 + ["ViTDet tiny"]
    assert {row["padded_input"] for row in rows} == {128}


def test_encoder_keeps_int_l_times_ratio_tokens(rows):
    # 128 px at stride 16: an 8 x 8 token grid.
    kept = {row["sample_ratio"]: (row["tokens_kept"], row["tokens_total"]) for row in rows[:3]}
    assert kept == {0.25: (16, 64), 0.5: (32, 64), 1.0: (64, 64)}
    assert "tokens_kept" not in rows[3]


def test_times_and_ratios_are_positive_numbers(rows):
    for row in rows:
        for key in ("wall_s", "cpu_s", "wall_ratio", "cpu_ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["variant"], key)
        assert all(math.isfinite(value) for value in row["first_losses"].values())
    baseline = rows[2]
    assert baseline["wall_ratio"] == baseline["cpu_ratio"] == 1.0


def test_markdown_table_beside_the_json(report_path):
    lines = report_path.with_suffix(".md").read_text().splitlines()
    table = [line for line in lines if line.startswith("| MIMDet tiny") or line.startswith("| ViTDet tiny")]
    assert len(table) == 4
    assert "| ratio 0.5 | 32 / 64 |" in table[1]
    assert any(line.startswith("MIMDet tiny at 128: ratio 0.5 costs") for line in lines)


def test_memory_worker_reports_growth_in_a_fresh_process():
    output = run_script("--memory-worker", "tiny", "0.5", "--input-size", "128x128").stdout
    growth = float(output.strip().splitlines()[-1])
    assert growth > 0


def test_bad_sample_ratio_is_refused():
    result = run_script("--ratios", "0.5", "1.5", check=False)
    assert result.returncode != 0
    assert "sample ratios must be in (0, 1], got [1.5]" in result.stderr


def test_a_wrong_token_count_or_a_nan_loss_stops_the_benchmark():
    class Counter:
        kept, total = 31, 64

    check_step("tiny ratio 0.49", {"loss_cls": 1.0}, Counter, ratio=0.49)  # int(31.36)
    with pytest.raises(RuntimeError, match="kept 31 of 64 tokens, expected int\\(L \\* ratio\\) = 32"):
        check_step("tiny ratio 0.5", {"loss_cls": 1.0}, Counter, ratio=0.5)
    with pytest.raises(RuntimeError, match="non-finite losses"):
        check_step("reference", {"loss_cls": float("nan")}, Counter, ratio=None)
