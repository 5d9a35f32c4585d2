"""benchmarks/physical_limit.py: the forward's achieved rate, and with --profile the
time per op and the rate of the matrix products inside the model. No timing asserted."""
import json
import subprocess
import sys

import pytest


def test_profile_splits_the_forward_into_ops_and_rates_the_matmuls(tmp_path):
    output = tmp_path / "limit.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/physical_limit.py", "--input-size", "128", "--iters", "1", "--profile",
         "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(output.read_text())
    profile = result["profile"]
    assert sum(op["share"] for op in profile["ops"]) == pytest.approx(1.0)
    ops = {op["op"]: op for op in profile["ops"]}
    # ViT-B: qkv, proj, fc1 and fc2 in each of 12 blocks; their FLOPs are 2 x the
    # multiply-adds, at 128 px (8 x 8 tokens, windows of 14 x 14 after padding) most of them.
    assert ops["aten::addmm"]["calls"] == 48
    assert 0 < ops["aten::addmm"]["gflop"] <= 2 * result["fvcore_gflops"]
    assert 0 < profile["matmul_share"] < 1
    assert profile["ceiling_fraction_of_matmul"] == pytest.approx(
        profile["matmul_gflop_per_s_inside"] / result["matmul_gflop_per_s"])
    assert "| `aten::addmm` | 48 |" in completed.stdout
