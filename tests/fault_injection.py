"""Run ``tools/train_net.py`` and SIGKILL it at a chosen moment (used by test_reliability.py).

    python tests/fault_injection.py --kill-during-save N -- TRAIN_NET_ARGS...
    python tests/fault_injection.py --kill-before-tag N -- TRAIN_NET_ARGS...
    python tests/fault_injection.py --kill-at-iteration K -- TRAIN_NET_ARGS...

``--kill-during-save N``: the N-th ``torch.save`` writes half of its bytes, then the
process kills itself. ``--kill-before-tag N``: killed after the N-th checkpoint file
is complete, before ``last_checkpoint`` names it. ``--kill-at-iteration K``: killed
when step K starts. The kill is SIGKILL, which no Python code can intercept.
"""
import argparse
import io
import os
import runpy
import signal
import sys

import torch
from detectron2.engine import SimpleTrainer
from fvcore.common.checkpoint import Checkpointer

TRAIN_NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "train_net.py")


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_during_save(n):
    real_save, calls = torch.save, [0]

    def half_written_save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] < n:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        die()

    torch.save = half_written_save


def kill_before_tag(n):
    real_tag, calls = Checkpointer.tag_last_checkpoint, [0]

    def tag_then_maybe_die(self, name):
        calls[0] += 1
        if calls[0] >= n:
            die()
        real_tag(self, name)

    Checkpointer.tag_last_checkpoint = tag_then_maybe_die


def kill_at_iteration(k):
    real_step = SimpleTrainer.run_step

    def step_or_die(self):
        if self.iter == k:
            die()
        real_step(self)

    SimpleTrainer.run_step = step_or_die


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-during-save", type=int)
    parser.add_argument("--kill-before-tag", type=int)
    parser.add_argument("--kill-at-iteration", type=int)
    parser.add_argument("train_net_args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    if options.kill_during_save:
        kill_during_save(options.kill_during_save)
    if options.kill_before_tag:
        kill_before_tag(options.kill_before_tag)
    if options.kill_at_iteration is not None:
        kill_at_iteration(options.kill_at_iteration)
    args = options.train_net_args[1:] if options.train_net_args[:1] == ["--"] else options.train_net_args
    sys.argv = [TRAIN_NET, *args]
    runpy.run_path(TRAIN_NET, run_name="__main__")


if __name__ == "__main__":
    main()
