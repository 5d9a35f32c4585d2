"""Resident memory of this process: now, its peak, and the peak growth of one call.

A peak is only that of one computation in a process that holds nothing else, so
scripts measure memory in a fresh interpreter: :func:`run_worker`.
"""
import os
import resource
import subprocess
import sys

import psutil

__all__ = ["peak_rss_growth_mb", "peak_rss_mb", "reset_peak_rss", "rss_mb", "run_worker"]


def rss_mb():
    """Resident memory of this process now, in MiB."""
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb():
    """Peak resident memory of this process since start or :func:`reset_peak_rss`, in MiB.

    Read from VmHWM: ``getrusage``'s ru_maxrss also remembers, across exec, the RSS
    of the parent that forked this process, which would hide the peak of a small child."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss():
    """Restart the peak-RSS count from the current RSS (Linux >= 4.0), so that transient
    peaks of imports and model building do not hide the peak of what follows.

    Returns False where the kernel does not allow it (the peak then counts from start)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_growth_mb(fn):
    """Peak RSS growth (MiB) of one call of ``fn`` over the RSS just before it.

    Other allocations of the process count too, so call it in a fresh process that
    has only built what ``fn`` needs (see :func:`run_worker`)."""
    reset_peak_rss()
    before = rss_mb()
    fn()
    return peak_rss_mb() - before


def run_worker(script, *args):
    """Run ``script`` with ``args`` in a fresh interpreter; the number its last output line prints."""
    command = [sys.executable, os.path.abspath(script), *map(str, args)]
    output = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])
