"""Scale: two "machines" on loopback, and a submitit job requeued after preemption.

Two CPU processes on one machine (--num-gpus 2) are in test_train_net.py."""
import os
import re
import socket
import subprocess
import sys
import time

import psutil
import pytest
import torch
from conftest import dataset_flags

from d2backbones.engine.reproducibility import weights_fingerprint

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TRAIN_NET = os.path.join(ROOT, "tools", "train_net.py")
MICRO_CONFIG = "configs/demo/vitdet_micro.py"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def micro_args(tiny_shapes, output_dir, *overrides):
    return [
        "--config-file", MICRO_CONFIG,
        *dataset_flags("scale_train", tiny_shapes["train"]),
        "dataloader.train.dataset.names=scale_train",
        "dataloader.test.dataset.names=scale_train",
        f"train.output_dir={output_dir}",
        "train.log_period=1",
        "train.seed=3",
        "dataloader.evaluator=null",
        *overrides,
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fingerprints_in_logs(output_dir):
    """rank -> the weights fingerprint each rank logged after training."""
    found = {}
    for name in os.listdir(output_dir):
        if name.startswith("log.txt"):
            with open(os.path.join(output_dir, name)) as f:
                found.update((int(r), h) for r, h in re.findall(r"Weights fingerprint on rank (\d+): sha256 (\w+)", f.read()))
    return found


def final_fingerprint(output_dir):
    return weights_fingerprint(torch.load(os.path.join(output_dir, "model_final.pth"), weights_only=False)["model"])


def check_identical_ranks(output_dir, output):
    fingerprints = fingerprints_in_logs(output_dir)
    assert sorted(fingerprints) == [0, 1], output[-3000:]
    assert fingerprints[0] == fingerprints[1] == final_fingerprint(output_dir)
    assert f"Weights identical on all 2 ranks (sha256 {fingerprints[0]})" in output


def test_two_machines_on_loopback_end_with_identical_weights(tiny_shapes, tmp_path):
    url = f"tcp://127.0.0.1:{free_port()}"
    args = micro_args(tiny_shapes, tmp_path, "train.max_iter=3", "train.checkpointer.period=100")
    machines = [
        subprocess.Popen(
            [sys.executable, TRAIN_NET, "--num-machines", "2", "--machine-rank", str(rank), "--dist-url", url, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
        )
        for rank in (0, 1)
    ]
    outputs = [machine.communicate(timeout=600)[0] for machine in machines]
    assert [m.returncode for m in machines] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "World size: 2" in outputs[0]
    check_identical_ranks(tmp_path, outputs[0])


def test_submitit_job_is_requeued_with_resume_after_preemption(tiny_shapes, tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import submit
    finally:
        sys.path.pop(0)
    output_dir = tmp_path / "output"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the local job
    job = submit.submit([
        "--cluster", "local", "--job-dir", str(tmp_path / "jobs"), "--gpus-per-node", "0", "--timeout", "10",
        "--", *micro_args(tiny_shapes, output_dir, "train.max_iter=16", "train.checkpointer.period=4"),
    ])
    deadline = time.monotonic() + 300
    while not (output_dir / "last_checkpoint").exists():
        assert job.state not in ("FINISHED", "FAILED") and time.monotonic() < deadline, job.stderr()
        time.sleep(0.2)
    # What Slurm does before preempting a job: submitit's signal (USR2) to the task,
    # whose handler calls TrainingJob.checkpoint() and asks for a requeue.
    (task,) = psutil.Process(job._process.pid).children()
    task.send_signal(submitit.JobEnvironment._usr_sig())
    job.result()

    with open(output_dir / "log.txt") as f:
        starts = [int(i) for i in re.findall(r"Starting training from iteration (\d+)", f.read())]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 4 and starts[1] % 4 == 0, starts
    assert "Requeued job" in job.stdout() + job.stderr()
    assert "resume=True" in job.stdout()
    assert (output_dir / "model_final.pth").exists()
