"""The ``results.json`` record of an evaluation, written by ``tools/train_net.py``
and read by ``tools/compare.py``."""
import json
import math

__all__ = ["SUMMARY_METRICS", "finite_only", "json_safe", "read_results", "summarize"]

# Headline metrics per task: COCO's AP by size, and LVIS's AP by category frequency
# (rare / common / frequent). Each is kept when the evaluator reports it.
SUMMARY_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def is_not_a_measurement(value):
    """The one rule both scrubbers below follow: a NaN or infinite float is no metric.

    COCO reports NaN for an area range with no objects (e.g. APl on small images),
    and ``json.dump`` would write the invalid token ``NaN``.
    """
    return isinstance(value, float) and not math.isfinite(value)


def json_safe(value):
    """``value`` with every NaN / inf float replaced by None (JSON ``null``), for
    ``results.json``, where a missing measurement is shown as missing."""
    if is_not_a_measurement(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def finite_only(results):
    """``results`` (nested dicts of numbers) with its NaN / inf entries left out, for
    detectron2's ``EvalHook``: it takes floats only (no None) and puts them in metrics.json."""
    return {
        key: finite_only(value) if isinstance(value, dict) else value
        for key, value in results.items()
        if not is_not_a_measurement(value)
    }


def summarize(results):
    """``{task: {metric: value}}`` with only the :data:`SUMMARY_METRICS` each task has."""
    return {
        task: {m: json_safe(metrics[m]) for m in SUMMARY_METRICS if m in metrics}
        for task, metrics in results.items()
        if isinstance(metrics, dict)
    }


def read_results(path):
    """A ``results.json`` record; older records without ``summary`` get one."""
    with open(path) as f:
        record = json.load(f)
    if "results" not in record:
        raise ValueError(f"{path} is not a results.json written by tools/train_net.py (no 'results' key)")
    record.setdefault("summary", summarize(record["results"]))
    record["path"] = path
    return record
