"""Timing calls: median seconds of repeated calls, and variants timed in alternation."""
import dataclasses
import statistics
import time

import torch

__all__ = ["AlternatingTimes", "median_time", "synchronize", "time_alternately", "time_calls"]


def synchronize(device):
    """Wait for the queued CUDA work of ``device``, so that a timer sees it done; no-op on CPU."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(fn, iters, warmup, device="cpu", clock=time.perf_counter):
    """Seconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed calls.

    ``clock=time.process_time`` counts this process's CPU seconds (all threads)
    instead of wall seconds: steadier when other processes share the CPU."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        synchronize(device)
        start = clock()
        fn()
        synchronize(device)
        times.append(clock() - start)
    return times


def median_time(fn, iters, warmup, device="cpu", clock=time.perf_counter):
    """Median of :func:`time_calls`."""
    return statistics.median(time_calls(fn, iters, warmup, device, clock))


@dataclasses.dataclass
class AlternatingTimes:
    """What :func:`time_alternately` measured, each a dict keyed by variant name:
    ``wall_s`` / ``cpu_s``, the median wall and CPU seconds (CPU: this process, all
    threads); ``wall_s_all`` / ``cpu_s_all``, the lists of every timed round; and
    ``first_results``, what each variant's first call returned."""

    wall_s: dict
    cpu_s: dict
    wall_s_all: dict
    cpu_s_all: dict
    first_results: dict


def time_alternately(variants, rounds, warmup_rounds=0, device="cpu", on_call=None):
    """Time several variants of one computation, alternating them round by round.

    Each round calls every variant once, in order, so that a change of the machine's
    load during the run hits all variants alike; timing one variant's rounds after
    another's would hand the change to one of them.

    Args:
        variants (dict[str, Callable[[], Any]]): variant name -> the call to time.
        rounds (int): timed calls of each variant, at least 1.
        warmup_rounds (int): untimed rounds first, alternating as well.
        device: CUDA work is synchronized before and after each call.
        on_call (Callable[[str, float, float, bool], Any] | None): called after every
            call with (name, wall seconds, CPU seconds, whether the call is timed),
            e.g. to print progress.

    Returns:
        AlternatingTimes: medians and every timed round's wall and CPU seconds, and the
        value each variant's first call returned (to check that the variants agree).
    """
    if rounds < 1 or warmup_rounds < 0:
        raise ValueError(f"need rounds >= 1 and warmup_rounds >= 0; got {rounds} and {warmup_rounds}")
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    first_results = {}
    for round_index in range(warmup_rounds + rounds):
        timed = round_index >= warmup_rounds
        for name, fn in variants.items():
            synchronize(device)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            result = fn()
            synchronize(device)
            wall_s, cpu_s = time.perf_counter() - start_wall, time.process_time() - start_cpu
            first_results.setdefault(name, result)
            if timed:
                wall[name].append(wall_s)
                cpu[name].append(cpu_s)
            if on_call is not None:
                on_call(name, wall_s, cpu_s, timed)
    return AlternatingTimes(
        wall_s={name: statistics.median(seconds) for name, seconds in wall.items()},
        cpu_s={name: statistics.median(seconds) for name, seconds in cpu.items()},
        wall_s_all=wall,
        cpu_s_all=cpu,
        first_results=first_results,
    )
