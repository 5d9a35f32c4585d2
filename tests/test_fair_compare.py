"""tools/fair_compare.py: what is held equal, when seeds are added, and a tiny run end to end."""
import os
import subprocess
import sys

import pytest

from d2backbones.comparison import ARMS, FairComparePlan, summarize
from d2backbones.comparison.plan import LABELLED_TRAIN


def _overrides(run):
    return dict(o.split("=", 1) for o in run.overrides)


def test_every_pretraining_gets_the_same_pool_budget_and_target(tmp_path):
    plan = FairComparePlan(str(tmp_path), pretrain_iters=700, pretrain_batch=32, pool_size=30000)
    pretraining = [_overrides(plan.pretrain_run(family)) for family in ARMS]
    held = ("train.max_iter", "dataloader.train.total_batch_size", "dataloader.train.dataset.names", "model.target")
    assert all({k: o[k] for k in held} == {k: pretraining[0][k] for k in held} for o in pretraining)
    assert pretraining[0]["dataloader.train.dataset.names"] == "synthetic_unlabeled_30000"
    assert plan.pretrain_images_seen == 700 * 32
    # MIMDet fine-tunes the MAE encoder and decoder: it shares ViTDet's run.
    assert plan.pretrain_run("mimdet") == plan.pretrain_run("vitdet")
    assert len([r for r in plan.runs() if r.kind == "pretrain"]) == 3


def test_scratch_and_pretrained_differ_only_in_the_initial_checkpoint(tmp_path):
    plan = FairComparePlan(str(tmp_path), finetune_iters=300)
    scratch, pretrained = (_overrides(plan.finetune_run("swin", init, 0.1, 7)) for init in ("scratch", "pretrained"))
    assert pretrained.pop("train.init_checkpoint").endswith(os.path.join("simmim_swin_tiny", "model_final.pth"))
    scratch.pop("train.output_dir"), pretrained.pop("train.output_dir")
    assert scratch == pretrained
    assert scratch["dataloader.train.dataset.names"] == f"{LABELLED_TRAIN}@0.1"
    assert (scratch["train.max_iter"], scratch["train.eval_period"], scratch["train.seed"]) == ("300", "300", "7")
    assert _overrides(plan.finetune_run("swin", "scratch", 1.0, 7))["dataloader.train.dataset.names"] == LABELLED_TRAIN


def test_a_pool_under_ten_times_the_labels_is_refused(tmp_path):
    with pytest.raises(ValueError, match="under 10x"):
        FairComparePlan(str(tmp_path), pool_size=5000)


def test_small_gaps_get_more_seeds_and_large_ones_do_not(tmp_path):
    plan = FairComparePlan(str(tmp_path), families=["vitdet", "convnext"], label_fractions=[0.1], seeds=[42])
    measured = {("vitdet", 0.1, "scratch"): [10.0], ("vitdet", 0.1, "pretrained"): [11.5],
                ("convnext", 0.1, "scratch"): [10.0], ("convnext", 0.1, "pretrained"): [14.0]}
    extra = plan.extra_seeds(measured, small_gap=2.0, num_seeds=3)
    assert {(r.family, r.init, r.seed) for r in extra} == {
        ("vitdet", init, seed) for init in ("scratch", "pretrained") for seed in (43, 44)}


def test_rows_average_seeds_and_charge_the_pretraining(tmp_path):
    plan = FairComparePlan(str(tmp_path), families=["vitdet"], label_fractions=[0.1], pretrain_iters=10,
                           pretrain_batch=4)
    runs = [{"family": "vitdet", "fraction": 0.1, "init": init, "seed": seed, "box_ap": ap, "box_ap50": 2 * ap,
             "finetune_cpu_s": 360.0, "finetune_wall_s": 180.0,
             "pretrain_cpu_s": 3600.0 if init == "pretrained" else 0.0,
             "pretrain_wall_s": 1800.0 if init == "pretrained" else 0.0}
            for init, aps in (("scratch", (10.0, 12.0)), ("pretrained", (14.0, 15.0, 16.0)))
            for seed, ap in zip((42, 43, 44), aps)]
    scratch, pretrained = summarize(plan, runs)
    assert (scratch["seeds"], scratch["box_ap"], scratch["box_ap_spread"]) == (2, 11.0, "10.0-12.0")
    assert pretrained["gain"] == pytest.approx(4.0) and "gain" not in scratch
    assert pretrained["total_cpu_h"] == pytest.approx(1.1) and scratch["total_cpu_h"] == pytest.approx(0.1)
    assert pretrained["pretrain_images"] == 40 and scratch["pretrain_images"] == 0


def test_tiny_comparison_runs_reports_and_resumes(tmp_path):
    command = [
        sys.executable, "tools/fair_compare.py", "--output", str(tmp_path), "--families", "vitdet",
        "--labels", "0.1", "--pretrain-iters", "2", "--pretrain-batch", "4", "--finetune-iters", "2",
        "--small-gap", "0", "--pretrain-opts", "dataloader.train.num_workers=0",
        "--finetune-opts", "dataloader.test.dataset.names=synthetic_shapes_val@0.02", "dataloader.train.num_workers=0",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert first.stdout.count(": training, log in") == 3
    table = open(tmp_path / "fair_compare.md").read()
    assert "| vitdet | 10% | scratch | 1 |" in table and "| vitdet | 10% | pretrained | 1 |" in table
    assert os.path.getsize(tmp_path / "fair_compare.png") > 0
    # The pretrained run started from the pretraining's checkpoint, through the real loader.
    log = open(tmp_path / "finetune/vitdet/labels0.1/pretrained/seed42/fair_compare_log.txt").read()
    assert "pretrain/mae_vitdet_tiny/model_final.pth (mae_full)" in log
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and ": training, log in" not in again.stdout
    assert open(tmp_path / "fair_compare.md").read() == table


def test_a_small_pool_is_refused_by_the_tool_in_one_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, "tools/fair_compare.py", "--output", str(tmp_path), "--pool-size", "5000"],
        capture_output=True, text=True, timeout=300,
    )
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 1
    assert lines[-1].startswith("error: --pool-size 5000 is under 10x") and "Traceback" not in completed.stderr
    assert not os.listdir(tmp_path)
