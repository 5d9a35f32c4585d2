"""Building the config's loaders on the resumable, bad-image-tolerant pieces.

A config's ``dataloader.train`` is written for detectron2's
``build_detection_train_loader`` (so detectron2's own tools run it too). The
engine builds the same loader from the same arguments with
:func:`build_resumable_train_loader`, and reads images with
:class:`RobustDatasetMapper` wherever the config asks for ``DatasetMapper``.
A ``RepeatFactorTrainingSampler`` (the LVIS configs) becomes the resumable
loader's repeat factors, computed by detectron2 on the same dataset. Loaders it
cannot reproduce exactly (another sampler, or a custom builder) are built as
written, and resuming them is not sample-exact (logged).
"""
import copy
import logging

from detectron2.config import instantiate
from detectron2.data import DatasetMapper, build_detection_train_loader
from detectron2.data.samplers import RepeatFactorTrainingSampler
from detectron2.utils.registry import locate

from ..data.resumable_loader import build_resumable_train_loader
from ..data.robust_images import RobustDatasetMapper

__all__ = ["build_test_loader", "build_train_loader"]

logger = logging.getLogger("d2backbones")

_RESUMABLE_ARGUMENTS = {"_target_", "dataset", "mapper", "total_batch_size", "num_workers", "aspect_ratio_grouping"}
# A sampler with other arguments (e.g. its own seed) is built as written.
_RESUMABLE_SAMPLER_ARGUMENTS = {"_target_", "repeat_factors"}


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


def _unsupported_arguments(loader_cfg):
    """The arguments of a ``build_detection_train_loader`` config that the resumable
    loader cannot reproduce, as ``["sampler", ...]``."""
    extra = set(loader_cfg.keys()) - _RESUMABLE_ARGUMENTS
    sampler = loader_cfg.get("sampler")
    if sampler is None or (
        _target(sampler) is RepeatFactorTrainingSampler and not set(sampler.keys()) - _RESUMABLE_SAMPLER_ARGUMENTS
    ):
        extra.discard("sampler")
    return sorted(extra)


def _repeat_factors(factors_cfg, dataset):
    """The per-image repeat factors a ``RepeatFactorTrainingSampler`` config asks for,
    for ``dataset`` (the loader's own dicts, so index ``i`` is image ``i``): a float
    tensor of shape ``(len(dataset),)``."""
    from_frequency = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency
    if _target(factors_cfg) is from_frequency:
        # The config points dataset_dicts at the training set; it is already loaded.
        options = {key: factors_cfg[key] for key in factors_cfg.keys() if key not in ("_target_", "dataset_dicts")}
        return from_frequency(dataset, **options)
    return instantiate(factors_cfg)


def build_train_loader(cfg, seed, strict):
    """The training loader of ``cfg``: resumable (with ``seed`` / ``start_iter``
    attributes to set after a resume) when it is detectron2's standard loader,
    with or without a ``RepeatFactorTrainingSampler``."""
    loader_cfg = _with_robust_mapper(cfg.dataloader.train)
    extra = _unsupported_arguments(loader_cfg)
    if _target(loader_cfg) is not build_detection_train_loader or extra:
        logger.warning(
            "dataloader.train (%s%s) is built as written: a resumed run will not see exactly the "
            "batches of an uninterrupted one, and unreadable images are not skipped.",
            _target(loader_cfg),
            f" with {', '.join(extra)}" if extra else "",
        )
        return instantiate(loader_cfg)
    dataset = instantiate(loader_cfg.dataset)
    repeat_factors = None
    if loader_cfg.get("sampler") is not None:
        repeat_factors = _repeat_factors(loader_cfg.sampler.repeat_factors, dataset)
        logger.info(
            "dataloader.train: repeat-factor sampling over %d images (%.3f repeats per image on average), resumable.",
            len(dataset),
            float(repeat_factors.mean()),
        )
    return build_resumable_train_loader(
        dataset,
        mapper=instantiate(loader_cfg.mapper),
        total_batch_size=loader_cfg.total_batch_size,
        num_workers=loader_cfg.get("num_workers", 0),
        aspect_ratio_grouping=loader_cfg.get("aspect_ratio_grouping", True),
        seed=seed,
        strict=strict,
        repeat_factors=repeat_factors,
    )


def build_test_loader(cfg):
    """The evaluation loader of ``cfg``, reading images of any bit depth; an unreadable
    image is evaluated as a black one (logged), or is an error with ``train.strict_data``."""
    return instantiate(_with_robust_mapper(cfg.dataloader.test, unreadable_as_blank=not cfg.train.get("strict_data", False)))
