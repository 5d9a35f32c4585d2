"""Reading images whatever their storage, and failing on bad files with their name.

detectron2's ``read_image`` handles 8-bit RGB, grayscale, RGBA and palette files,
but saturates 16-bit grayscale (every value above 255 becomes white) and reports
a broken file as a bare PIL error deep inside a data-loader worker.
:func:`read_image_any_depth` narrows high bit depths to 8 bits and applies the
EXIF orientation; :class:`RobustDatasetMapper` is detectron2's ``DatasetMapper``
reading through it, so a bad file raises :class:`BadImageError` naming the file.
"""
import copy
import logging
import struct

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from PIL import Image, ImageOps

__all__ = ["BadImageError", "RobustDatasetMapper", "read_image_any_depth"]

logger = logging.getLogger(__name__)

# PIL modes holding more than 8 bits per sample, and the largest value each can hold.
_HIGH_DEPTH_RANGES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}
# What a corrupt, truncated or missing file raises while PIL opens or decodes it.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


class BadImageError(Exception):
    """An image file that is missing or cannot be decoded; ``path`` names it."""

    def __init__(self, path, reason):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path
        self.reason = reason


def _to_eight_bits(image):
    """16/32-bit integer and float images as 8-bit grayscale ("L"), other modes unchanged."""
    if image.mode in _HIGH_DEPTH_RANGES:
        values = np.asarray(image, dtype=np.float64)
        scaled = np.clip(values, 0, _HIGH_DEPTH_RANGES[image.mode]) * (255.0 / _HIGH_DEPTH_RANGES[image.mode])
        return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        peak = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
        return Image.fromarray(np.round(np.clip(values / peak, 0, 1) * 255).astype(np.uint8), mode="L")
    return image


def read_image_any_depth(file_name, format=None):
    """Read an image as detectron2's ``read_image`` does, for any PIL-readable storage.

    Grayscale, RGBA, palette, CMYK and 16-bit files become ``format``; the EXIF
    orientation is applied, so the array has the size a viewer shows.

    Args:
        file_name (str): image path.
        format (str or None): "RGB", "BGR", "L" or any PIL mode, as in detectron2.

    Returns:
        np.ndarray: (H, W, C) uint8 (C = 1 for "L", 3 for RGB/BGR).

    Raises:
        BadImageError: the file is missing, truncated or not an image.
    """
    try:
        with open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()  # decode now, so a truncated file fails here and not later
            image = _to_eight_bits(ImageOps.exif_transpose(image))
            return utils.convert_PIL_to_numpy(image, format)
    except _DECODE_ERRORS as error:
        raise BadImageError(file_name, f"{type(error).__name__}: {error}") from error


class RobustDatasetMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` (same arguments, same output), reading images with
    :func:`read_image_any_depth`.

    A bad image raises :class:`BadImageError`; with ``unreadable_as_blank=True`` (for
    evaluation, where every image must be answered for) it is logged and replaced by
    a black image of the size the dataset gives, so its objects count as missed.
    """

    def __init__(self, *args, unreadable_as_blank=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.unreadable_as_blank = unreadable_as_blank

    def _read(self, dataset_dict):
        try:
            return read_image_any_depth(dataset_dict["file_name"], format=self.image_format)
        except BadImageError as error:
            if not self.unreadable_as_blank or "height" not in dataset_dict:
                raise
            logger.warning("Evaluating unreadable image %s as a black image (%s)", error.path, error.reason)
            channels = 1 if self.image_format == "L" else 3
            return np.zeros((dataset_dict["height"], dataset_dict["width"], channels), dtype=np.uint8)

    def __call__(self, dataset_dict):
        """Map one dataset dict to the model's input: ``image`` (C, H, W) uint8 tensor,
        plus ``instances`` when training (and ``sem_seg`` / ``proposals`` when present)."""
        dataset_dict = copy.deepcopy(dataset_dict)
        image = self._read(dataset_dict)
        utils.check_image_size(dataset_dict, image)
        sem_seg_file = dataset_dict.pop("sem_seg_file_name", None)
        sem_seg = read_image_any_depth(sem_seg_file, "L").squeeze(2) if sem_seg_file else None

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype("long"))
        if self.proposal_topk is not None:
            utils.transform_proposals(dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk)
        if not self.is_train:
            dataset_dict.pop("annotations", None)
        elif "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict
