"""LVIS evaluation that runs with the numpy this project installs.

``lvis`` 0.5.3, the latest release on PyPI, still calls ``np.float``, which numpy
removed in 1.24, so detectron2's ``LVISEvaluator`` fails at its last step. The call
sits inside ``lvis.LVISEval.accumulate``, which no subclass can reach without copying
it, so this evaluator restores the alias for the duration of ``evaluate`` only.
"""
import numpy as np
from detectron2.evaluation.lvis_evaluation import LVISEvaluator as D2LVISEvaluator

from ..utils import temporarily_set

__all__ = ["LVISEvaluator"]


class LVISEvaluator(D2LVISEvaluator):
    """detectron2's ``LVISEvaluator`` (same arguments and results: AP, APr/APc/APf, APs/APm/APl)."""

    def evaluate(self):
        with temporarily_set(np, "float", float):
            return super().evaluate()
