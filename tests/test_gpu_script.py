"""benchmarks/gpu.sh --smoke: the GPU run at tiny sizes on the CPU, so that it cannot rot."""
import json
import math
import os
import subprocess

from d2backbones.layers.attention import REL_POS_MODES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("detector", "rel_pos", "mimdet", "tiny_train")


def numbers(value):
    """Every int or float inside nested dicts and lists (bools left out)."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_smoke_run_writes_every_section_with_finite_numbers(tmp_path):
    subprocess.run(["bash", os.path.join(REPO, "benchmarks", "gpu.sh"), "--smoke", "--output-dir", str(tmp_path)],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    with open(tmp_path / "gpu.json") as f:
        report = json.load(f)
    assert report["device"] == "cpu" and report["smoke"]
    for section in SECTIONS:
        values = numbers(report[section])
        assert values and all(math.isfinite(v) for v in values), section
        assert report["section_s"][section] > 0
    assert set(report["detector"]["amp"]) == {"off"}
    assert report["detector"]["backbone_max_rel_err"] < 1e-3
    for block_type in ("window", "global"):
        assert set(report["rel_pos"][block_type]["step_s"]) == set(REL_POS_MODES)
    assert report["tiny_train"]["iters"] == 2
    markdown = (tmp_path / "gpu.md").read_text()
    assert all(title in markdown for title in ("ViTDet-B Mask R-CNN", "rel_pos_mode", "MIMDet-B", "Tiny config"))
