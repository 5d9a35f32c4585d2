"""A fixed random share of a registered dataset, named ``<name>@<fraction>``.

Label-efficiency runs train on part of a split: ``synthetic_shapes_train@0.1`` is a
random 10% of ``synthetic_shapes_train``'s images, and ``coco_2017_train@0.01`` works
alike. The share is drawn once from ``seed`` (default 0) over the base split's image
order, so every run naming it, in any process, trains on the same images; the
training seed varies the rest. A name may also fix the draw:
``synthetic_shapes_train@0.1:seed=3``.

The subset keeps the base split's metadata (classes, id map, whether it has masks),
so class counts and the mask branch follow the base as they would for the whole split.
"""
import re

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["parse_subset_name", "register_subsets", "subset_indices"]

_SUBSET_PATTERN = re.compile(r"^(?P<base>.+)@(?P<fraction>[0-9.]+)(?::seed=(?P<seed>\d+))?$")
# What a subset inherits: what the engine reads to size the heads and the mask branch.
_INHERITED_METADATA = ("thing_classes", "thing_dataset_id_to_contiguous_id", "has_masks", "evaluator_type")


def parse_subset_name(name):
    """``"base@0.1[:seed=S]"`` -> (base, fraction, seed); None for a name without ``@``.

    Raises:
        ValueError: the fraction is not in (0, 1].
    """
    match = _SUBSET_PATTERN.match(name)
    if match is None:
        return None
    fraction = float(match.group("fraction"))
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"dataset {name!r}: the share after '@' must be in (0, 1], e.g. {match.group('base')}@0.1")
    return match.group("base"), fraction, int(match.group("seed") or 0)


def subset_indices(num_images, fraction, seed):
    """Sorted indices of ``round(fraction * num_images)`` images (at least one), drawn with ``seed``."""
    count = max(1, round(fraction * num_images))
    return np.sort(np.random.RandomState(seed).permutation(num_images)[:count])


def register_subsets(names):
    """Register every ``base@fraction`` among ``names`` whose base is registered (a no-op
    for one already there); other names are left to the dataset checks."""
    registered = set(DatasetCatalog.list())
    for name in names:
        parsed = parse_subset_name(name)
        if parsed is None or name in registered or parsed[0] not in registered:
            continue
        base, fraction, seed = parsed

        def records(base=base, fraction=fraction, seed=seed):
            dicts = DatasetCatalog.get(base)
            return [dicts[i] for i in subset_indices(len(dicts), fraction, seed)]

        DatasetCatalog.register(name, records)
        base_metadata = MetadataCatalog.get(base)
        inherited = {key: base_metadata.get(key) for key in _INHERITED_METADATA if base_metadata.get(key) is not None}
        MetadataCatalog.get(name).set(subset_of=base, subset_fraction=fraction, subset_seed=seed, **inherited)
