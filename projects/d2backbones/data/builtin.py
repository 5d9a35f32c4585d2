"""The embedded datasets, registered at ``import d2backbones`` as detectron2 registers its own.

detectron2 registers ``coco_2017_train`` and its other builtin splits when
``detectron2.data`` is imported, before their files are looked at. This module does
the same for ``synthetic_shapes_train`` and ``synthetic_shapes_val`` (the defaults of
:func:`register_synthetic_shapes`), so that any LazyConfig tool that imports the
package, as every config naming them does, finds them: detectron2's own
``lazyconfig_train_net.py``, ``analyze_model.py`` and ``benchmark.py`` included.

Nothing is generated at import. A split is generated into the cache
(:func:`default_datasets_root`, race-safe across processes) on its first
``DatasetCatalog.get``, or on the first read of its ``json_file`` or ``image_root``
metadata, which a ``COCOEvaluator`` reads when it is built.
"""
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata

from .synthetic import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SPLITS,
    SYNTHETIC_CLASSES,
    default_datasets_root,
    generate_synthetic_shapes,
    synthetic_dataset_name,
)
from .user_datasets import register_user_dataset

__all__ = ["register_builtin_datasets"]


class _SyntheticSplit:
    """One default split: its files (generated on the first call) and its records.

    As the ``DatasetCatalog`` function, the first call generates the split and then
    registers its json with :func:`register_user_dataset`, in place of this lazy
    entry, so that from then on it is loaded and cleaned as ``--dataset`` data is."""

    def __init__(self, name, root, split):
        self.name, self.root, self.split = name, root, split

    def files(self):
        """(json path, image dir) of the split, generated into the cache if absent."""
        num_images, seed = DEFAULT_SPLITS[self.split]
        root = default_datasets_root() if self.root is None else self.root
        return generate_synthetic_shapes(root, self.split, num_images, DEFAULT_IMAGE_SIZE, seed)

    def __call__(self):
        json_path, image_dir = self.files()
        DatasetCatalog.remove(self.name)
        try:
            register_user_dataset(self.name, json_path, image_dir)
        except Exception:
            # Keep the name registered, so a retry fails with the same error, not "unknown dataset".
            DatasetCatalog.register(self.name, self)
            raise
        return DatasetCatalog.get(self.name)


class _SyntheticSplitMetadata(Metadata):
    """Metadata whose ``json_file`` and ``image_root`` generate the split when first read.

    detectron2's ``Metadata`` holds plain values and offers no hook for a value that
    does not exist yet; these two are the only ones that need the files."""

    def __init__(self, split, **kwargs):
        super().__init__(_split=split, **kwargs)

    @property
    def json_file(self):
        return self._split.files()[0]

    @property
    def image_root(self):
        return self._split.files()[1]


def register_builtin_datasets(root=None):
    """Register ``synthetic_shapes_train`` and ``synthetic_shapes_val``, generating nothing.

    Their metadata (``thing_classes``, ``thing_dataset_id_to_contiguous_id``,
    ``evaluator_type="coco"``, ``has_masks``) is known without the files. A name that
    is already registered is left as it is.

    Args:
        root (str or None): datasets root; None reads :func:`default_datasets_root`
            when a split is first needed, so ``$D2BACKBONES_DATASETS`` may be set after
            the import.

    Returns:
        list[str]: the names this call registered.
    """
    registered = []
    for split in DEFAULT_SPLITS:
        name = synthetic_dataset_name(split)
        if name in DatasetCatalog.list():
            continue
        lazy_split = _SyntheticSplit(name, root, split)
        DatasetCatalog.register(name, lazy_split)
        MetadataCatalog[name] = _SyntheticSplitMetadata(
            lazy_split,
            name=name,
            thing_classes=list(SYNTHETIC_CLASSES),
            # The generator numbers its categories from 1 in SYNTHETIC_CLASSES order.
            thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(SYNTHETIC_CLASSES))},
            evaluator_type="coco",
            has_masks=True,
        )
        registered.append(name)
    return registered
