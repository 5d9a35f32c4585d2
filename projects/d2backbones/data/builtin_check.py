"""Fail early, with a useful message, when a dataset cannot be found.

detectron2 registers its builtin COCO and LVIS splits at import under
``$DETECTRON2_DATASETS`` (default ``./datasets``) whether or not the files are
there; without this check, a missing download surfaces much later as a bare
file-not-found deep inside data loading.
"""

import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin import _PREDEFINED_SPLITS_COCO, _PREDEFINED_SPLITS_LVIS

__all__ = ["check_dataset_available"]

_MAX_SUGGESTIONS = 5
_MIN_PREFIX = 3


def _builtin_layouts():
    """Builtin split name -> (image dir, json file), relative to DETECTRON2_DATASETS."""
    layouts = {}
    for splits in (*_PREDEFINED_SPLITS_COCO.values(), *_PREDEFINED_SPLITS_LVIS.values()):
        layouts.update(splits)
    return layouts


def _similar_names(name, registered):
    """Registered names sharing the longest possible prefix with ``name``."""
    for length in range(len(name), min(_MIN_PREFIX, len(name)) - 1, -1):
        matches = sorted(n for n in registered if n.startswith(name[:length]))
        if matches:
            return matches[:_MAX_SUGGESTIONS]
    return []


def check_dataset_available(name):
    """Check that dataset ``name`` can be loaded, before any work is spent.

    * Not registered: ``KeyError`` saying how to register one.
    * A builtin COCO / LVIS split whose json file or image directory is
      missing: ``FileNotFoundError`` naming ``DETECTRON2_DATASETS`` and the
      expected layout.
    * Any other registered dataset: nothing to check.

    Every message is one line, so it reads well at the end of a traceback.
    """
    registered = DatasetCatalog.list()
    if name not in registered:
        similar = _similar_names(name, registered)
        hint = f"; registered names like it: {', '.join(similar)}" if similar else ""
        raise KeyError(
            f"Dataset {name!r} is not registered; to use your own COCO-format data pass "
            f"--dataset {name}=ANN.json:IMAGE_DIR{hint}"
        )
    layout = _builtin_layouts().get(name)
    if layout is None:
        return
    metadata = MetadataCatalog.get(name)
    json_file, image_root = metadata.json_file, metadata.image_root
    missing = [json_file] if not os.path.isfile(json_file) else []
    missing += [image_root] if not os.path.isdir(image_root) else []
    if not missing:
        return
    relative_image_dir, relative_json = layout
    env_value = os.environ.get("DETECTRON2_DATASETS")
    env_state = repr(env_value) if env_value is not None else "unset, so './datasets'"
    raise FileNotFoundError(
        f"Builtin dataset {name!r} not found: missing {' and '.join(map(repr, missing))}. "
        f"detectron2 looks for it under DETECTRON2_DATASETS (currently {env_state}, read at "
        f"import) and expects $DETECTRON2_DATASETS/{relative_json} and "
        f"$DETECTRON2_DATASETS/{relative_image_dir.rstrip('/')}/"
    )
