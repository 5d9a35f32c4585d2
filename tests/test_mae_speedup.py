"""benchmarks/mae_speedup.py runs (tiny) and reports both speed-ups; no timing asserted."""
import json
import subprocess
import sys


def test_mae_speedup_benchmark_runs_tiny(tmp_path):
    output = tmp_path / "mae_speedup.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/mae_speedup.py", "--model", "tiny", "--batch-size", "2", "--rounds", "1",
         "--warmup-rounds", "0", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    record = json.loads(output.read_text())
    assert set(record["images_per_s"]) == {"mae encoder, ratio 0.75", "encoder, all tokens",
                                           "mae step, ratio 0.75", "mae step, encoder on all tokens"}
    assert record["encoder_speedup"] > 0 and record["step_speedup"] > 0
    assert "encoder speed-up" in completed.stdout
