"""A bad ``train.init_checkpoint`` ends ``tools/train_net.py`` with one line that names
the file and the problem: before a model is built or a file written, with no traceback,
and without running anything the file holds. Training and ``--eval-only`` alike."""
import argparse
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DEMO_CONFIG
from detectron2.config import LazyConfig, instantiate
from omegaconf import OmegaConf

from d2backbones.checkpoint import CheckpointError
from d2backbones.engine.checkpoint import AtomicCheckpointer
from d2backbones.engine.cli import check_init_checkpoint

REPO = os.path.join(os.path.dirname(__file__), "..")
TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")


class RunsCommand:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """name -> (path, what the error line must say); ``marker`` must never appear."""
    root = tmp_path_factory.mktemp("bad_checkpoints")
    marker = root / "code_ran"
    torch.manual_seed(0)
    state = instantiate(LazyConfig.load(DEMO_CONFIG).model).state_dict()

    torch.save({"model": state}, root / "good.pth")
    good = (root / "good.pth").read_bytes()
    (root / "truncated.pth").write_bytes(good[: len(good) // 2])
    (root / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "empty.pth").write_bytes(b"")
    torch.save({"model": state, "hook": RunsCommand(marker)}, root / "runs_code.pth")
    with open(root / "runs_code.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "x", "hook": RunsCommand(marker)}, f)
    diverged = dict(state)
    diverged["backbone.net.pos_embed"] = state["backbone.net.pos_embed"].clone().fill_(float("nan"))
    torch.save({"model": diverged}, root / "nan.pth")
    (root / "run_dir").mkdir()
    torch.save({"model": state}, root / "run_dir" / "model_final.pth")

    unsafe = f"is unsafe: reading it needs full unpickling, which would run code it references ({os.system.__module__}.system)"
    cases = {
        "random": ("random.pth", "the file is truncated, corrupt or not a checkpoint"),
        "empty": ("empty.pth", "the file is empty"),
        "truncated": ("truncated.pth", "the file is truncated, corrupt or not a checkpoint"),
        "runs_code.pth": ("runs_code.pth", unsafe),
        "runs_code.pkl": ("runs_code.pkl", unsafe),
        "nan": ("nan.pth", "has NaN or infinite values in 1 of its"),
        "directory": ("run_dir", "is a directory, not a checkpoint file: give a file inside it; it holds model_final.pth"),
    }
    return {name: (str(root / file), expected) for name, (file, expected) in cases.items()}, marker


@pytest.mark.parametrize(
    "case, eval_only",
    [(name, False) for name in ("random", "empty", "truncated", "runs_code.pth", "runs_code.pkl", "nan", "directory")]
    + [("truncated", True), ("runs_code.pth", True)],
)
def test_bad_init_checkpoint_is_one_line_before_anything_is_built(bad_files, tmp_path, case, eval_only):
    files, marker = bad_files
    path, expected = files[case]
    output_dir = tmp_path / "out"
    command = [
        sys.executable, TRAIN_NET, "--config-file", DEMO_CONFIG, *(["--eval-only"] if eval_only else []),
        f"train.init_checkpoint={path}", f"train.output_dir={output_dir}", "train.max_iter=1",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO)

    assert completed.returncode == 2, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]], lines[-5:]
    assert path in errors[0] and expected in errors[0], errors[0]
    # Nothing ran from the file, and the run stopped before writing its config or building a model.
    assert not marker.exists()
    assert not output_dir.exists()
    assert "Model:" not in completed.stdout


def test_resume_from_the_output_dir_does_not_read_the_init_checkpoint(tmp_path):
    """``--resume`` continues from the run's own checkpoint and never loads
    ``train.init_checkpoint``: a bad one must not stop it, and must stop a fresh run."""
    bad = tmp_path / "random.pth"
    bad.write_bytes(np.random.default_rng(0).bytes(512))
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    cfg = OmegaConf.create({"train": {"init_checkpoint": str(bad), "output_dir": str(output_dir)}})
    resume, fresh = argparse.Namespace(resume=True, eval_only=False), argparse.Namespace(resume=False, eval_only=False)
    with pytest.raises(CheckpointError, match="random.pth"):
        check_init_checkpoint(cfg, resume)  # nothing to resume from yet
    AtomicCheckpointer(torch.nn.Linear(2, 2), str(output_dir)).save("model_0000004")
    check_init_checkpoint(cfg, resume)
    with pytest.raises(CheckpointError, match="random.pth"):
        check_init_checkpoint(cfg, fresh)
