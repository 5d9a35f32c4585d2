"""tools/train_net.py end to end on CPU: training, evaluation, DDP, and input errors."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import DEMO_CONFIG, cli_error_line, dataset_flags, read_metrics
from detectron2.checkpoint import DetectionCheckpointer

from d2backbones.data import SYNTHETIC_CLASSES
from d2backbones.engine import cli, train_loop
from d2backbones.engine.reproducibility import weights_fingerprint
from d2backbones.engine.train_loop import do_test

TRAIN_NET = os.path.join(os.path.dirname(__file__), "..", "tools", "train_net.py")


def tiny_run_args(tiny_shapes, output_dir, name, *overrides):
    return [
        "--config-file", DEMO_CONFIG,
        *dataset_flags(f"{name}_train", tiny_shapes["train"]),
        *dataset_flags(f"{name}_val", tiny_shapes["val"]),
        f"dataloader.train.dataset.names={name}_train",
        f"dataloader.test.dataset.names={name}_val",
        f"train.output_dir={output_dir}",
        "dataloader.train.total_batch_size=4",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        "train.log_period=1",
        *overrides,
    ]


def test_short_training_run_lowers_the_loss(tiny_shapes, tmp_path):
    args = cli.build_parser().parse_args(
        tiny_run_args(tiny_shapes, tmp_path, "loss", "train.max_iter=40", "train.eval_period=0",
                      "optimizer.lr=1e-3", "lr_multiplier.warmup_length=0.1")
    )
    results = cli.main(args)

    losses = [r["total_loss"] for r in read_metrics(tmp_path) if "total_loss" in r]
    assert len(losses) == 40
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.8 * first, (first, last)
    # Evaluation ran after training, through the COCO evaluator, on both tasks.
    assert set(results) == {"bbox", "segm"}
    for metrics in results.values():
        assert all(0.0 <= metrics[k] <= 100.0 for k in ("AP", "AP50", "AP75"))
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["results"]["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"])
    assert os.path.isfile(tmp_path / "model_final.pth")


def test_num_classes_follow_the_json_and_box_only_data_trains(box_only_shapes, tmp_path):
    argv = [
        "--config-file", DEMO_CONFIG,
        *dataset_flags("boxes_only", box_only_shapes),
        "dataloader.train.dataset.names=boxes_only",
        "dataloader.test.dataset.names=boxes_only",
        f"train.output_dir={tmp_path}",
        "train.max_iter=2",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
    ]
    # The user's choice wins over the json's categories.
    assert cli.setup(cli.build_parser().parse_args(argv + ["model.roi_heads.num_classes=9"])).model.roi_heads.num_classes == 9

    args = cli.build_parser().parse_args(argv)
    cfg = cli.setup(args)
    assert cfg.model.roi_heads.num_classes == len(SYNTHETIC_CLASSES)
    assert cfg.model.roi_heads.mask_head is None
    results = cli.main(args)
    assert set(results) == {"bbox"}
    model_keys = torch.load(tmp_path / "model_final.pth", weights_only=False)["model"]
    assert not any(key.startswith("roi_heads.mask_head") for key in model_keys)
    assert model_keys["roi_heads.box_predictor.cls_score.weight"].shape[0] == len(SYNTHETIC_CLASSES) + 1


def test_eval_only_reloads_the_trained_weights(tiny_shapes, tmp_path, monkeypatch):
    evaluated_weights = []  # the state dict of each model evaluated, when it is evaluated

    def recording_do_test(cfg, model):
        evaluated_weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return do_test(cfg, model)

    monkeypatch.setattr(train_loop, "do_test", recording_do_test)
    train_args = cli.build_parser().parse_args(
        tiny_run_args(tiny_shapes, tmp_path, "evalonly", "train.max_iter=3", "train.eval_period=0")
    )
    trained = cli.main(train_args)
    eval_args = cli.build_parser().parse_args(
        ["--eval-only"] + tiny_run_args(
            tiny_shapes, tmp_path / "eval", "evalonly", f"train.init_checkpoint={tmp_path}/model_final.pth"
        )
    )
    evaluated = cli.main(eval_args)
    trained_state, loaded_state = evaluated_weights
    assert loaded_state.keys() == trained_state.keys()
    assert [k for k in trained_state if not torch.equal(loaded_state[k], trained_state[k])] == []
    assert evaluated["bbox"]["AP"] == pytest.approx(trained["bbox"]["AP"])
    assert os.path.isfile(tmp_path / "eval" / "results.json")


def test_two_process_gloo_ddp_run(tiny_shapes, tmp_path):
    command = [
        sys.executable, TRAIN_NET, "--num-gpus", "2", "--dist-url", "auto",
        *tiny_run_args(tiny_shapes, tmp_path, "ddp", "train.max_iter=3", "train.eval_period=0",
                       "train.checkpointer.period=2"),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "World size: 2" in completed.stderr + completed.stdout
    iterations = [r["iteration"] for r in read_metrics(tmp_path) if "total_loss" in r]
    assert iterations[-1] == 2
    checkpoint = DetectionCheckpointer(torch.nn.Module(), str(tmp_path))
    assert checkpoint.get_checkpoint_file().endswith("model_final.pth")
    # Both ranks end with the weights rank 0 saved.
    final_weights = torch.load(tmp_path / "model_final.pth", weights_only=False)["model"]
    assert f"Weights identical on all 2 ranks (sha256 {weights_fingerprint(final_weights)})" in completed.stdout


def test_missing_config_file_is_one_line(capsys):
    line = cli_error_line(["--config-file", "configs/nope.py"], capsys)
    assert "config file not found: configs/nope.py" in line


def test_unknown_override_key_is_named(capsys):
    line = cli_error_line(["--config-file", DEMO_CONFIG, "train.max_iterr=5"], capsys)
    assert "'train.max_iterr'" in line and "did you mean train.max_iter" in line


def test_not_a_lazyconfig_is_one_line(tmp_path, capsys):
    script = tmp_path / "script.py"
    script.write_text("x = 1\n")
    line = cli_error_line(["--config-file", str(script)], capsys)
    assert "is not a training LazyConfig" in line


def test_missing_coco_directory_names_detectron2_datasets(capsys):
    line = cli_error_line(
        ["--config-file", "configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py"], capsys
    )
    assert "DETECTRON2_DATASETS" in line and "coco" in line


def test_override_of_a_constructor_default_is_accepted():
    cfg = cli.load_config(DEMO_CONFIG, ["model.backbone.net.rel_pos_mode=fold"])
    assert cfg.model.backbone.net.rel_pos_mode == "fold"
