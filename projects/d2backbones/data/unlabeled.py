"""Unlabeled images for pretraining: any folder of images, or an unlimited synthetic pool.

- ``--unlabeled NAME=DIR`` registers every image under ``DIR`` (recursively, e.g.
  COCO's ``train2017/`` or an ImageNet tree) as dataset ``NAME``.
- ``synthetic_unlabeled`` (1,000,000 images) and ``synthetic_unlabeled_<N>`` (N
  images) are the synthetic-shapes generator as a pool: image ``i`` is drawn from
  its own seed, when it is loaded, so nothing is written to disk.

Records are detectron2 dataset dicts without annotations (``file_name``, or
``synthetic_index`` for the pool). :class:`MAEPretrainMapper` reads one (an
unreadable file raises :class:`~.robust_images.BadImageError`, which the training
loader skips and names, as in detection training) and applies MAE's augmentation.
"""
import os
import re
from collections.abc import Sequence

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.common import DatasetFromList
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as TV

from .robust_images import read_image_any_depth
from .synthetic import DEFAULT_IMAGE_SIZE, render_scene

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAEPretrainMapper",
    "SYNTHETIC_POOL_NAME",
    "list_images",
    "parse_unlabeled_spec",
    "register_synthetic_pool",
    "register_synthetic_pools",
    "register_unlabeled_folder",
    "synthetic_pool_image",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
SYNTHETIC_POOL_NAME = "synthetic_unlabeled"
SYNTHETIC_POOL_SIZE = 1_000_000
_SYNTHETIC_POOL_PATTERN = re.compile(rf"^{SYNTHETIC_POOL_NAME}(?:_(\d+))?$")
# The labelled splits use seeds 0 (train) and 1 (val): the pool repeats neither.
SYNTHETIC_POOL_SEED = 2
_SPEC_FORM = "NAME=IMAGE_DIR"


def list_images(image_dir):
    """Image files under ``image_dir``, recursively, sorted; by extension, case-insensitive."""
    found = []
    for root, dirs, files in os.walk(image_dir, followlinks=True):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS))
    return found


def parse_unlabeled_spec(spec):
    """``NAME=IMAGE_DIR`` -> (name, image_dir); ``ValueError`` with one line if malformed or missing."""
    name, equals, image_dir = spec.partition("=")
    name, image_dir = name.strip(), os.path.expanduser(image_dir)
    if not equals or not name or not image_dir:
        raise ValueError(f"unlabeled dataset spec {spec!r} is not of the form {_SPEC_FORM}")
    if not os.path.isdir(image_dir):
        raise ValueError(f"unlabeled dataset {name!r}: image directory not found: {image_dir!r}")
    return name, image_dir


def _folder_records(name, image_dir):
    files = list_images(image_dir)
    if not files:
        raise ValueError(
            f"unlabeled dataset {name!r}: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {image_dir!r}"
        )
    return [{"file_name": path, "image_id": index} for index, path in enumerate(files)]


def register_unlabeled_folder(name, image_dir):
    """Register the images under ``image_dir`` as dataset ``name`` (listed when first loaded).

    Registering the same name with the same folder again is a no-op.

    Raises:
        ValueError: the name is taken by another dataset.
    """
    image_dir = os.path.abspath(os.fspath(image_dir))
    if name in DatasetCatalog.list():
        if MetadataCatalog.get(name).get("unlabeled_root") == image_dir:
            return
        raise ValueError(f"dataset {name!r} is already registered; pick another name for {image_dir!r}")
    DatasetCatalog.register(name, lambda: _folder_records(name, image_dir))
    MetadataCatalog.get(name).set(unlabeled_root=image_dir, has_masks=False)


def synthetic_pool_image(index, seed=SYNTHETIC_POOL_SEED, image_size=DEFAULT_IMAGE_SIZE):
    """Image ``index`` of the synthetic pool: (H, W, 3) uint8 RGB, the same on every call."""
    image, _ = render_scene(np.random.default_rng([seed, index]), image_size)
    return image


class _SyntheticPoolRecords(Sequence):
    """The records of a synthetic pool, made on access: any size costs no memory."""

    def __init__(self, num_images, image_size, seed):
        self.num_images, self.image_size, self.seed = num_images, image_size, seed

    def __len__(self):
        return self.num_images

    def __getitem__(self, index):
        if not 0 <= index < self.num_images:
            raise IndexError(f"synthetic pool index {index} out of range(0, {self.num_images})")
        size = self.image_size
        return {"synthetic_index": int(index), "synthetic_seed": self.seed, "image_id": int(index),
                "height": size, "width": size}


def register_synthetic_pool(name=SYNTHETIC_POOL_NAME, num_images=SYNTHETIC_POOL_SIZE,
                            image_size=DEFAULT_IMAGE_SIZE, seed=SYNTHETIC_POOL_SEED):
    """Register ``num_images`` synthetic images as dataset ``name`` (a no-op if it is there)."""
    if name in DatasetCatalog.list():
        return
    records = _SyntheticPoolRecords(num_images, image_size, seed)
    # Not serialised: the records are made on access, and a million of them would cost seconds.
    DatasetCatalog.register(name, lambda: DatasetFromList(records, copy=False, serialize=False))
    MetadataCatalog.get(name).set(synthetic_pool_size=num_images, has_masks=False)


def register_synthetic_pools(names):
    """Register every ``synthetic_unlabeled[_<N>]`` among ``names``."""
    for name in names:
        match = _SYNTHETIC_POOL_PATTERN.match(name)
        if match:
            register_synthetic_pool(name, int(match.group(1)) if match.group(1) else SYNTHETIC_POOL_SIZE)


class MAEPretrainMapper:
    """An unlabeled record -> ``{"image": (3, S, S) uint8}`` with MAE's augmentation:
    RandomResizedCrop (bicubic, antialiased) to ``image_size``, then a horizontal flip.

    The random draws come from torch's global generator, which the resumable loader
    seeds per sample, so a resumed run crops exactly as an uninterrupted one.
    """

    def __init__(
        self, image_size=224, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), horizontal_flip=True, image_format="BGR"
    ):
        """
        Args:
            image_size (int): side of the square crops.
            scale, ratio: of the crop, as in torchvision's ``RandomResizedCrop`` (MAE: scale 0.2-1.0).
            horizontal_flip (bool): flip with probability 0.5.
            image_format (str): "RGB" or "BGR", the model's ``input_format``.
        """
        steps = [TV.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio),
                                      interpolation=InterpolationMode.BICUBIC, antialias=True)]
        if horizontal_flip:
            steps.append(TV.RandomHorizontalFlip())
        self.augment = TV.Compose(steps)
        self.image_format = image_format

    def _read(self, record):
        if "synthetic_index" in record:
            image = synthetic_pool_image(record["synthetic_index"], record["synthetic_seed"], record["height"])
            return image[..., ::-1] if self.image_format == "BGR" else image
        return read_image_any_depth(record["file_name"], format=self.image_format)

    def __call__(self, record):
        image = torch.as_tensor(np.ascontiguousarray(self._read(record).transpose(2, 0, 1)))
        out = {key: record[key] for key in ("file_name", "synthetic_index", "image_id") if key in record}
        out["image"] = self.augment(image)
        return out
