"""benchmarks/mimdet_vs_official.py without the official checkout: the skip, and its pure helpers.

The comparison itself needs a checkout of hustvl/MIMDet (``--official-path``) and
minutes per step; it is not run here."""
import argparse
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks/mimdet_vs_official.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mimdet_vs_official", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skips_without_official_path(tmp_path):
    output = tmp_path / "out.json"
    result = subprocess.run([sys.executable, SCRIPT, "--output", str(output)], cwd=REPO, capture_output=True,
                            text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "skipped" in lines[0] and "--official-path" in lines[0]
    assert not output.exists()


@pytest.mark.parametrize("args, problem", [
    (["--rounds", "0"], "--rounds >= 1"),
    (["--sample-ratios", "0.5", "1.5"], "sample ratios must be in (0, 1]"),
    (["--batch-sizes", "2", "0"], "batch sizes must be >= 1"),
    (["--our-config", "configs/MIMDet/COCO/missing.py"], "--our-config configs/MIMDet/COCO/missing.py is not a file"),
])
def test_bad_arguments_get_one_line(args, problem, tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, *args, "--output", str(tmp_path / "out.json")], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and problem in result.stderr


def test_skips_a_path_that_is_not_a_checkout(tmp_path, capsys, bench):
    assert bench.main(["--official-path", str(tmp_path)]) is None
    assert "not a MIMDet checkout" in capsys.readouterr().out


def test_parse_size(bench):
    assert bench.parse_size("800x1216") == (800, 1216)
    assert bench.parse_size("256") == (256, 256)
    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_size("8x8")


def test_kept_ids_from_restore_matches_the_official_masking(bench):
    """The official random_masking: ids_keep = argsort(noise)[:, :int(L r)], ids_restore =
    argsort(ids_keep); the helper recovers the kept set, sorted, and it equals ours
    (d2backbones.mimdet.sample_kept_tokens) for the same noise."""
    from d2backbones.mimdet import sample_kept_tokens

    torch.manual_seed(3)
    noise = torch.rand(2, 50)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    kept = bench.kept_ids_from_restore(ids_restore, 0.5)
    assert torch.equal(kept, ids_shuffle[:, :25].sort(dim=1).values)
    torch.manual_seed(3)
    ours = sample_kept_tokens(torch.ones(2, 50, dtype=torch.bool), 25)
    assert torch.equal(kept, ours)


def test_relative_l2(bench):
    a = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    assert bench.relative_l2(a, a) == 0.0
    assert bench.relative_l2([torch.zeros(2), torch.zeros(1)], a) == pytest.approx(1.0)


def test_profile_groups(bench):
    assert bench.profile_group("backbone.bottom_up.encoder.patch_embed.proj.0.1") == "ConvStem stage 0 (stride 2)"
    assert bench.profile_group("backbone.bottom_up.encoder.blocks.3.attn") == "encoder blocks"
    assert bench.profile_group("backbone.fpn_lateral2") == "FPN convs"
    assert bench.profile_group("roi_heads.box_head") == "ROI heads"
    assert bench.profile_group("backbone.bottom_up.encoder.norm") is None


def test_targets_and_row(bench):
    row = {"mode": "train", "sample_ratio": 0.5,
           "time": {"ours": {"wall_s": 8.0, "cpu_s": 8.0}, "official": {"wall_s": 10.0, "cpu_s": 10.0}},
           "memory_mb": {"ours": 700.0, "official": 1000.0}}
    lines = bench.target_lines([row])
    assert "0.80" in lines[0] and lines[0].endswith("met)") and "not met" not in lines[0]
    assert "0.70" in lines[1] and "not met" in lines[1]
    assert "| train | 1 | 0.5 | 8.00 | 10.00 | 0.80 |" in bench.markdown_row(row)
    assert "| train | 4 | 0.5 |" in bench.markdown_row(dict(row, batch_size=4))
    assert bench.target_lines([dict(row, batch_size=4)])[0].startswith("4 image(s), ratio 0.5")


def test_batch_for_gives_the_images_asked_for(bench):
    batch = bench.batch_for((64, 96), batch_size=3)
    assert len(batch) == 3 and all(item["image"].shape == (3, 64, 96) for item in batch)
    assert len(batch[2]["instances"]) == bench.BOXES_PER_IMAGE


@pytest.mark.parametrize("rounds, header", [(None, "not timed (--no-time); 1 thread(s)"),
                                            (2, "2 timed round(s) after 1 warm-up; 1 thread(s)")])
def test_report_header_says_whether_anything_was_timed(bench, tmp_path, rounds, header):
    report = {"machine": "m", "date": "d", "command": "c", "rounds": rounds,
              "warmup_rounds": None if rounds is None else 1, "threads": 1, "input_size": (800, 1216),
              "results": [], "targets": []}
    bench.write_report(report, str(tmp_path / "r.json"))
    assert (tmp_path / "r.md").read_text().splitlines()[1].startswith(header)
