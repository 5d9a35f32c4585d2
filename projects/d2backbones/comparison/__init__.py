"""The fair comparison of ``tools/fair_compare.py``: every family from scratch and after
masked-image-modeling pretraining, with the pool, budget, target and fine-tuning held equal."""
from .arms import ARMS, Arm
from .plan import FairComparePlan, Run
from .report import box_ap_by_pair, collect, summarize, write_report
from .runner import run_plan

__all__ = ["ARMS", "Arm", "FairComparePlan", "Run", "box_ap_by_pair", "collect", "run_plan", "summarize", "write_report"]
