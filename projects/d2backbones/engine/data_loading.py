"""Building the config's loaders on the resumable, bad-image-tolerant pieces.

A config's ``dataloader.train`` is written for detectron2's
``build_detection_train_loader`` (so detectron2's own tools run it too). The
engine builds the same loader from the same arguments with
:func:`build_resumable_train_loader`, and reads images with
:class:`RobustDatasetMapper` wherever the config asks for ``DatasetMapper``.
Loaders it cannot reproduce exactly (a custom sampler or builder) are built as
written, and resuming them is not sample-exact (logged).
"""
import copy
import logging

from detectron2.config import instantiate
from detectron2.data import DatasetMapper, build_detection_train_loader
from detectron2.utils.registry import locate

from ..data.resumable_loader import build_resumable_train_loader
from ..data.robust_images import RobustDatasetMapper

__all__ = ["build_test_loader", "build_train_loader"]

logger = logging.getLogger("d2backbones")

_RESUMABLE_ARGUMENTS = {"_target_", "dataset", "mapper", "total_batch_size", "num_workers", "aspect_ratio_grouping"}


def _target(node):
    target = node.get("_target_") if hasattr(node, "get") else None
    return locate(target) if isinstance(target, str) else target


def _with_robust_mapper(loader_cfg, **mapper_options):
    """A copy of a loader config whose ``DatasetMapper`` reads with ``RobustDatasetMapper``."""
    loader_cfg = copy.deepcopy(loader_cfg)
    mapper = loader_cfg.get("mapper")
    if mapper is not None and _target(mapper) is DatasetMapper:
        mapper._target_ = RobustDatasetMapper
        mapper.update(mapper_options)
    return loader_cfg


def build_train_loader(cfg, seed, strict):
    """The training loader of ``cfg``: resumable (with ``seed`` / ``start_iter``
    attributes to set after a resume) when it is detectron2's standard loader."""
    loader_cfg = _with_robust_mapper(cfg.dataloader.train)
    extra = set(loader_cfg.keys()) - _RESUMABLE_ARGUMENTS
    if _target(loader_cfg) is not build_detection_train_loader or extra:
        logger.warning(
            "dataloader.train (%s%s) is built as written: a resumed run will not see exactly the "
            "batches of an uninterrupted one, and unreadable images are not skipped.",
            _target(loader_cfg),
            f" with {', '.join(sorted(extra))}" if extra else "",
        )
        return instantiate(loader_cfg)
    return build_resumable_train_loader(
        instantiate(loader_cfg.dataset),
        mapper=instantiate(loader_cfg.mapper),
        total_batch_size=loader_cfg.total_batch_size,
        num_workers=loader_cfg.get("num_workers", 0),
        aspect_ratio_grouping=loader_cfg.get("aspect_ratio_grouping", True),
        seed=seed,
        strict=strict,
    )


def build_test_loader(cfg):
    """The evaluation loader of ``cfg``, reading images of any bit depth; an unreadable
    image is evaluated as a black one (logged), or is an error with ``train.strict_data``."""
    return instantiate(_with_robust_mapper(cfg.dataloader.test, unreadable_as_blank=not cfg.train.get("strict_data", False)))
