"""Running the plan: one ``python -m d2backbones.engine`` process per run, in order,
timed, skipped when already done, so an interrupted comparison continues where it
stopped and a finished one re-reports in seconds."""
import json
import os
import resource
import subprocess
import sys
import time

from ..engine.checkpoint import AtomicFile

__all__ = ["RUN_RECORD", "RunFailed", "is_done", "run_plan", "run_record"]

# Written beside each run's outputs when its process succeeds: its command and cost.
RUN_RECORD = "fair_compare_run.json"


class RunFailed(RuntimeError):
    """A training process of the comparison exited with an error."""


def _children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def is_done(run):
    """Whether ``run`` finished before: its record is there with the same overrides."""
    record = run_record(run)
    return record is not None and tuple(record["overrides"]) == tuple(run.overrides)


def run_record(run):
    """The run's :data:`RUN_RECORD` as a dict, or None."""
    path = os.path.join(run.output_dir, RUN_RECORD)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _train(run, log):
    os.makedirs(run.output_dir, exist_ok=True)
    command = [sys.executable, "-m", "d2backbones.engine", "--config-file", run.config_file, *run.overrides]
    log_path = os.path.join(run.output_dir, "fair_compare_log.txt")
    log(f"[fair_compare] {run.name}: training, log in {log_path}")
    cpu_before, start = _children_cpu_seconds(), time.perf_counter()
    with open(log_path, "w") as log_file:
        completed = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT)
    wall_s, cpu_s = time.perf_counter() - start, _children_cpu_seconds() - cpu_before
    if completed.returncode != 0:
        raise RunFailed(f"{run.name} failed (exit {completed.returncode}); see {log_path}; "
                        "rerun the same command to retry it (finished runs are kept)")
    record = {"name": run.name, "kind": run.kind, "config_file": run.config_file, "overrides": list(run.overrides),
              "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1)}
    with AtomicFile(os.path.join(run.output_dir, RUN_RECORD), "w") as f:
        json.dump(record, f, indent=1)
    log(f"[fair_compare] {run.name}: done in {wall_s:.0f} s wall, {cpu_s:.0f} s CPU")
    return record


def run_plan(runs, log=print):
    """Train every run not done yet, in order; return their records (done ones read back)."""
    records = []
    for run in runs:
        records.append(run_record(run) if is_done(run) else _train(run, log))
    return records
