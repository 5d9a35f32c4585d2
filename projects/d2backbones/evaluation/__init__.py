"""Evaluators: detectron2's, with faster-coco-eval behind COCO AP."""
from .coco import COCOEvaluator

__all__ = ["COCOEvaluator"]
