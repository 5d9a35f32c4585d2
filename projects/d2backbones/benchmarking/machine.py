"""The machine a benchmark ran on: a one-line description and its float32 matmul rate."""
import os
import platform

import psutil
import torch

from .timing import time_calls

__all__ = ["machine_description", "matmul_gflop_per_s"]


def matmul_gflop_per_s(size=2048, iters=5, device="cpu"):
    """Measured float32 matmul rate of this machine (2 * size^3 flops per product of
    two (size, size) matrices), from the fastest of ``iters`` products."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds = min(time_calls(lambda: a @ b, iters, warmup=1, device=device))
    return 2 * size**3 / seconds / 1e9


def machine_description():
    """CPU model, core count, RAM and torch version, e.g. for the header of a report."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, torch {torch.__version__}"
