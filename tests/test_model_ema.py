"""train.model_ema: the decay arithmetic, a SIGKILL then --resume restores the average
exactly, evaluation of the average when asked, and nothing changes when it is off."""
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import MICRO_CONFIG, dataset_flags
from detectron2.config import LazyConfig
from omegaconf import OmegaConf

from d2backbones.engine import cli, train_loop
from d2backbones.engine.model_ema import ModelEmaHook, build_model_ema, load_ema_weights

FAULT_INJECTION = os.path.join(os.path.dirname(__file__), "fault_injection.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")
EMA_ON = ["train.model_ema.enabled=True", "train.model_ema.decay=0.9"]
pytestmark = pytest.mark.usefixtures("one_thread")


def micro_args(tiny_shapes, output_dir, *overrides):
    return [
        "--config-file", MICRO_CONFIG,
        *dataset_flags("ema_train", tiny_shapes["train"]),
        *dataset_flags("ema_val", tiny_shapes["val"]),
        "dataloader.train.dataset.names=ema_train",
        "dataloader.test.dataset.names=ema_val",
        f"train.output_dir={output_dir}",
        "train.log_period=1",
        "train.seed=7",
        *overrides,
    ]


def saved(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def ema_cfg(**model_ema):
    return OmegaConf.create({"train": {"model_ema": model_ema}})


class Counted(torch.nn.Module):
    """A float parameter and an integer buffer (which the average copies)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        self.register_buffer("count", torch.tensor(0))


def test_decay_matches_a_hand_computation():
    model = Counted()
    hook = ModelEmaHook(build_model_ema(ema_cfg(enabled=True, decay=0.75), model))
    hook.trainer = SimpleNamespace(model=model)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([2.0, 0.0]))  # e.g. loaded from train.init_checkpoint
    hook.before_train()
    expected = torch.tensor([2.0, 0.0])  # the average starts at the loaded weights
    for step, weight in enumerate([[6.0, 4.0], [-2.0, 8.0], [10.0, 0.0]], start=1):
        with torch.no_grad():
            model.weight.copy_(torch.tensor(weight))
            model.count.fill_(step)
        hook.after_step()
        expected = 0.75 * expected + 0.25 * torch.tensor(weight)
        assert torch.allclose(hook.ema.module.weight, expected, rtol=0, atol=1e-6), step
        assert hook.ema.module.count.item() == step
    # By hand: [2, 0] -> [3, 1] -> [1.75, 2.75] -> [3.8125, 2.0625].
    assert torch.allclose(hook.ema.module.weight, torch.tensor([3.8125, 2.0625]), rtol=0, atol=1e-6)


def test_a_bad_decay_is_one_clear_error():
    with pytest.raises(ValueError, match=r"train.model_ema.decay=1.0 is outside \[0, 1\)"):
        build_model_ema(ema_cfg(enabled=True, decay=1.0), Counted())


def test_off_by_default_and_checkpoints_unchanged(tiny_shapes, tmp_path):
    cfg = LazyConfig.load(MICRO_CONFIG)
    assert cfg.train.model_ema == {"enabled": False, "decay": 0.9998, "use_for_eval": False}
    assert build_model_ema(cfg, Counted()) is None
    cli.main(cli.build_parser().parse_args(micro_args(
        tiny_shapes, tmp_path, "train.max_iter=2", "train.eval_period=0", "dataloader.evaluator=null")))
    assert set(saved(tmp_path / "model_final.pth")) == {"model", "trainer", "iteration"}
    with pytest.raises(ValueError, match="has no model_ema entry: train with train.model_ema.enabled=True"):
        load_ema_weights(Counted(), tmp_path / "model_final.pth")


def test_sigkill_then_resume_gives_the_ema_of_an_uninterrupted_run(tiny_shapes, tmp_path, monkeypatch):
    """Checkpoints at iterations 2 and 5 of 8; killed when step 4 starts, resumed from
    model_0000002.pth. The final evaluation (use_for_eval) sees the average."""
    schedule = ["train.max_iter=8", "train.checkpointer.period=3", "train.eval_period=0",
                "train.model_ema.use_for_eval=True", *EMA_ON]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    args = micro_args(tiny_shapes, interrupted, *schedule)
    killed = subprocess.run([sys.executable, FAULT_INJECTION, "--kill-at-iteration", "4", "--", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env=ENV)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:]
    assert "model_ema" in saved(interrupted / "model_0000002.pth")

    evaluated = []

    def record_evaluated(cfg, model):
        evaluated.append({k: v.clone() for k, v in model.state_dict().items()})
        return {}

    monkeypatch.setattr(train_loop, "do_test", record_evaluated)
    cli.main(cli.build_parser().parse_args(["--resume", *args]))
    cli.main(cli.build_parser().parse_args(micro_args(tiny_shapes, reference, *schedule)))

    resumed, uninterrupted = saved(interrupted / "model_final.pth"), saved(reference / "model_final.pth")
    assert resumed["model_ema"].keys() == uninterrupted["model_ema"].keys()
    for key, value in uninterrupted["model_ema"].items():
        assert torch.equal(resumed["model_ema"][key], value), key
    # The average is not the trained weights, and it has the model's keys under "module.".
    ema_weights = {k[len("module."):]: v for k, v in uninterrupted["model_ema"].items()}
    assert ema_weights.keys() == uninterrupted["model"].keys()
    assert any(not torch.equal(v, uninterrupted["model"][k]) for k, v in ema_weights.items())
    # --eval-only with use_for_eval loads the checkpoint's average.
    cli.main(cli.build_parser().parse_args(["--eval-only", *micro_args(
        tiny_shapes, tmp_path / "eval", f"train.init_checkpoint={reference / 'model_final.pth'}",
        "train.model_ema.use_for_eval=True")]))
    # One final evaluation per training run and the --eval-only one, each of the average.
    assert len(evaluated) == 3
    for state in evaluated:
        assert state.keys() == ema_weights.keys()
        assert all(torch.equal(state[k], v) for k, v in ema_weights.items())
