"""Benchmarking: timing, memory, the machine, random inputs, a config's detector measured
on them, and the report. ``tools/benchmark.py`` and ``benchmarks/*.py`` build on it."""
from .checks import check_step, max_rel_err
from .harness import autocast, build_model_and_optimizer, count_flops, enable_activation_checkpointing, measure_config
from .machine import machine_description, matmul_gflop_per_s
from .memory import peak_rss_growth_mb, peak_rss_mb, reset_peak_rss, rss_mb, run_worker
from .report import TABLE_COLUMNS, plot, record_line, records_header, write_outputs
from .sizes import format_size, parse_size
from .steps import reseed_everything, seeded_train_step
from .synthetic import synthetic_batch
from .timing import AlternatingTimes, median_time, synchronize, time_alternately, time_calls

__all__ = [
    "AlternatingTimes",
    "TABLE_COLUMNS",
    "autocast",
    "build_model_and_optimizer",
    "check_step",
    "count_flops",
    "enable_activation_checkpointing",
    "format_size",
    "machine_description",
    "matmul_gflop_per_s",
    "max_rel_err",
    "measure_config",
    "median_time",
    "parse_size",
    "peak_rss_growth_mb",
    "peak_rss_mb",
    "plot",
    "record_line",
    "records_header",
    "reseed_everything",
    "reset_peak_rss",
    "rss_mb",
    "run_worker",
    "seeded_train_step",
    "synchronize",
    "synthetic_batch",
    "time_alternately",
    "time_calls",
    "write_outputs",
]
