"""Inference and benchmarking surface: the Predictor API, prediction outputs, results records."""
from .outputs import coco_records, draw_instances
from .predictor import Predictor, config_metadata
from .results import json_safe, read_results, summarize

__all__ = ["Predictor", "coco_records", "config_metadata", "draw_instances", "json_safe", "read_results", "summarize"]
