"""``make demo CONFIG=configs/Pretrain/...``: tools/demo.py trains a pretraining config and
writes its report instead of a detector's."""
import os
import subprocess
import sys


def test_demo_reaches_a_pretraining_config(tmp_path):
    completed = subprocess.run(
        [sys.executable, "tools/demo.py", "--config-file", "configs/Pretrain/mae_vitdet_tiny.py",
         "--output", str(tmp_path), "train.max_iter=2", "dataloader.train.total_batch_size=4",
         "dataloader.train.num_workers=0"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for name in ("model_final.pth", "reconstructions.png", "loss_curve.png"):
        assert os.path.getsize(tmp_path / name) > 0, name
    assert f"train.init_checkpoint={tmp_path}/model_final.pth" in completed.stdout
