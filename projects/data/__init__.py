"""Datasets: a synthetic default that needs no download, the user's own COCO
json, and early checks for detectron2's builtin COCO / LVIS splits."""

from .builtin_check import check_dataset_available
from .synthetic import (
    SYNTHETIC_CLASSES,
    default_datasets_root,
    generate_synthetic_shapes,
    register_synthetic_shapes,
)
from .user_datasets import num_classes_from_json, parse_dataset_spec, register_user_dataset

__all__ = [
    "SYNTHETIC_CLASSES",
    "check_dataset_available",
    "default_datasets_root",
    "generate_synthetic_shapes",
    "num_classes_from_json",
    "parse_dataset_spec",
    "register_synthetic_shapes",
    "register_user_dataset",
]
