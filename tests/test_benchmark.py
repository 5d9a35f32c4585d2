"""d2backbones.benchmarking (tools/benchmark.py): measures a tiny config and writes JSON,
markdown and PNG (no timing asserted)."""
import json
import mmap
import os

import pytest
import torch
import torch.nn as nn

from d2backbones import benchmarking as benchmark
from d2backbones.benchmarking.cli import parse_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(REPO, "configs/demo/vitdet_tiny.py")
TINY_OVERRIDES = [
    "model.backbone.net.depth=2",
    "model.backbone.net.embed_dim=32",
    "model.backbone.square_pad=64",
    "model.roi_heads.batch_size_per_image=16",
]


@pytest.fixture(scope="module")
def tiny_record():
    args = parse_args(
        ["--config-file", DEMO_CONFIG, "--input-size", "64", "--iters", "1", "--warmup", "0",
         "--in-process", "--matmul", "--matmul-size", "128", *TINY_OVERRIDES]
    )
    return benchmark.measure_config(args, DEMO_CONFIG)


def test_record_has_every_measurement(tiny_record):
    for key in ("params", "backbone_params", "gflops", "backbone_gflops", "train_s_per_iter",
                "infer_s_per_image", "backbone_infer_s_per_image", "peak_rss_mb", "rss_after_build_mb",
                "matmul_gflop_per_s", "backbone_achieved_gflop_per_s"):
        assert tiny_record[key] > 0, key
    assert tiny_record["peak_rss_mb"] >= tiny_record["rss_after_build_mb"] - 1
    assert 0 < tiny_record["backbone_params"] < tiny_record["params"]
    assert tiny_record["backbone_gflops"] < tiny_record["gflops"]
    assert tiny_record["config"] == DEMO_CONFIG and tiny_record["name"] == "vitdet_tiny"
    assert (tiny_record["device"], tiny_record["amp"], tiny_record["input_size"]) == ("cpu", "off", 64)
    assert torch.isfinite(torch.tensor(tiny_record["last_train_loss"]))


def test_pretraining_config_reports_images_per_second():
    config = os.path.join(REPO, "configs/Pretrain/mae_vitdet_tiny.py")
    args = parse_args(["--config-file", config, "--input-size", "64", "--batch-size", "4", "--iters", "1",
                       "--warmup", "0", "--in-process", "model.img_size=64", "model.depth=1"])
    record = benchmark.measure_config(args, config)
    assert record["pretraining"] and record["train_images_per_s"] == pytest.approx(4 / record["train_s_per_iter"])
    # MAE's own loss, and nothing of a detector to time.
    assert 0 < record["last_train_loss"] < 10
    assert not {"backbone_params", "infer_s_per_image", "gflops"} & record.keys()


def test_overrides_reach_the_model(tiny_record):
    # embed_dim 32 x depth 2 is far below the 128 x 4 ViT of the demo config (1.1 M backbone params).
    assert tiny_record["backbone_params"] < 0.3


def test_writes_json_markdown_and_png(tiny_record, tmp_path):
    records = [tiny_record, {**tiny_record, "name": "second", "train_s_per_iter": None}]
    benchmark.write_outputs(records, str(tmp_path))
    with open(tmp_path / "benchmark.json") as f:
        assert json.load(f) == records
    lines = (tmp_path / "benchmark.md").read_text().splitlines()
    assert lines[0].startswith("| config | input |") and len(lines) == 4
    assert lines[2].startswith("| vitdet_tiny | 64 |")
    assert " - |" in lines[3]  # a missing value prints as "-"
    assert (tmp_path / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_batch_boxes_lie_inside_the_image():
    batch = benchmark.synthetic_batch(2, (48, 80), num_classes=3, boxes_per_image=4)
    for item in batch:
        assert item["image"].shape == (3, 48, 80)
        boxes = item["instances"].gt_boxes.tensor
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 48).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert item["instances"].gt_masks.tensor.shape == (4, 48, 80)
        assert item["instances"].gt_classes.max() < 3


def test_activation_checkpointing_needs_a_model_that_offers_it():
    with pytest.raises(ValueError, match="no module has a use_act_checkpoint"):
        benchmark.enable_activation_checkpointing(nn.Linear(2, 2), "plain.py")


def test_overrides_after_config_files_are_split_off():
    args = parse_args(["--config-file", DEMO_CONFIG, "train.max_iter=3", "--iters", "1"])
    assert args.config_file == [DEMO_CONFIG] and args.opts == ["train.max_iter=3"]


def test_missing_config_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--config-file", "configs/nope.py"])
    assert "config file not found: configs/nope.py" in capsys.readouterr().err


# ---- time_alternately (shared by the side-by-side scripts in benchmarks/) ----------------
def test_time_alternately_alternates_variants_round_by_round():
    calls, reports = [], []

    def variant(name):
        def call():
            calls.append(name)
            return f"{name} #{calls.count(name)}"
        return call

    timed = benchmark.time_alternately(
        {"a": variant("a"), "b": variant("b")}, rounds=3, warmup_rounds=1,
        on_call=lambda name, wall, cpu, is_timed: reports.append((name, is_timed)),
    )
    assert calls == ["a", "b"] * 4
    assert reports == [("a", False), ("b", False)] + [("a", True), ("b", True)] * 3
    assert timed.first_results == {"a": "a #1", "b": "b #1"}
    for name in ("a", "b"):
        assert len(timed.wall_s_all[name]) == len(timed.cpu_s_all[name]) == 3
        assert timed.wall_s[name] == sorted(timed.wall_s_all[name])[1]
        assert timed.cpu_s[name] == sorted(timed.cpu_s_all[name])[1]


def test_time_alternately_needs_a_timed_round():
    with pytest.raises(ValueError, match="rounds >= 1"):
        benchmark.time_alternately({"a": lambda: None}, rounds=0)


def test_peak_rss_growth_counts_an_allocation():
    # An anonymous mmap, not a Python object: malloc may serve 64 MiB from memory an
    # earlier test freed but left resident (a pytest worker after many tests), and
    # the RSS would not grow; fresh mapped pages grow it once written.
    def allocate_64_mib():
        size = 64 * 2**20
        with mmap.mmap(-1, size) as block:
            for offset in range(0, size, mmap.PAGESIZE):
                block[offset] = 1

    assert benchmark.peak_rss_growth_mb(allocate_64_mib) >= 48


def test_run_worker_reads_the_last_printed_number(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text("import sys\nprint('log line')\nprint(float(sys.argv[1]) * 2)\n")
    assert benchmark.run_worker(str(script), 1.25) == 2.5


def test_flops_of_a_compiled_backbone_are_those_of_the_eager_one():
    model, _, _ = benchmark.build_model_and_optimizer(DEMO_CONFIG, TINY_OVERRIDES)
    image = benchmark.synthetic_batch(1, (64, 64), 4)[0]["image"]
    eager = benchmark.count_flops(model, image)
    model.backbone.compile()
    assert benchmark.count_flops(model, image) == eager
    assert model.backbone._compiled_call_impl is not None  # still compiled for the timings
