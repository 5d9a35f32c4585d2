"""Datasets: a synthetic default that needs no download, the user's own COCO
json, unlabeled images for pretraining (a folder, or the synthetic generator as a
pool), early checks for detectron2's builtin COCO / LVIS splits, and loading that
survives bad files and resumes exactly."""

from .builtin_check import check_dataset_available
from .coco_checks import clean_dataset_dicts, validate_coco
from .resumable_loader import BadDataReport, ResumableTrainLoader, build_resumable_train_loader
from .robust_images import BadImageError, RobustDatasetMapper, read_image_any_depth
from .subsets import register_subsets
from .synthetic import (
    SYNTHETIC_CLASSES,
    default_datasets_root,
    generate_synthetic_shapes,
    register_synthetic_shapes,
)
from .unlabeled import (
    MAEPretrainMapper,
    parse_unlabeled_spec,
    register_synthetic_pools,
    register_unlabeled_folder,
)
from .user_datasets import num_classes_from_json, parse_dataset_spec, register_user_dataset

__all__ = [
    "SYNTHETIC_CLASSES",
    "BadDataReport",
    "BadImageError",
    "MAEPretrainMapper",
    "ResumableTrainLoader",
    "RobustDatasetMapper",
    "build_resumable_train_loader",
    "check_dataset_available",
    "clean_dataset_dicts",
    "default_datasets_root",
    "generate_synthetic_shapes",
    "num_classes_from_json",
    "parse_dataset_spec",
    "parse_unlabeled_spec",
    "read_image_any_depth",
    "register_subsets",
    "register_synthetic_pools",
    "register_synthetic_shapes",
    "register_unlabeled_folder",
    "register_user_dataset",
    "validate_coco",
]
