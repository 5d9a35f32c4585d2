"""NaN scrubbing follows one rule: results.json shows a non-finite metric as null,
and the EvalHook (metrics.json) gets the same results with exactly those entries left out."""
import json
import math

from detectron2.evaluation.testing import flatten_results_dict

from d2backbones.inference.results import finite_only, json_safe

RESULTS = {
    "bbox": {"AP": 13.8, "APs": 0.0, "APl": math.nan, "AP-circle": math.inf},
    "segm": {"AP": 26.3, "APl": -math.inf, "count": 3},
    "seconds": 1.5,
}


def test_both_scrubbers_drop_the_same_entries():
    nulled = {k for k, v in flatten_results_dict(json_safe(RESULTS)).items() if v is None}
    flat = flatten_results_dict(finite_only(RESULTS))
    assert nulled == {"bbox/APl", "bbox/AP-circle", "segm/APl"}
    assert set(flat) == set(flatten_results_dict(RESULTS)) - nulled
    assert flat == {k: v for k, v in flatten_results_dict(RESULTS).items() if k not in nulled}


def test_scrubbed_results_are_valid_json_and_floats_for_the_eval_hook():
    json.dumps(json_safe(RESULTS), allow_nan=False)
    json.dumps(finite_only(RESULTS), allow_nan=False)
    # detectron2's EvalHook casts every flattened value with float(); None would fail it.
    assert all(math.isfinite(float(v)) for v in flatten_results_dict(finite_only(RESULTS)).values())
