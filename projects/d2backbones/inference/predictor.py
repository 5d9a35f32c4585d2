"""Inference for LazyConfig detectors: ``Predictor.from_config(cfg, weights)(image) -> Instances``.

Images go through exactly what evaluation does to them: the test mapper's
``image_format`` (RGB for MAE-pretrained ViTs, BGR for detectron2's defaults)
and its ``augmentations`` (the test-time resize), then the model's own
normalisation and padding (``square_pad`` for ViTDet), and the detections come
back in the input image's pixel coordinates.
"""
import logging

import numpy as np
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.catalog import Metadata
from detectron2.data.detection_utils import read_image

from ..checkpoint import load_checkpoint
from .mask_paste import with_batch_pasting

__all__ = ["Predictor", "config_metadata"]

logger = logging.getLogger("d2backbones")

IMAGE_FORMATS = ("RGB", "BGR")


def _convert_format(image, source_format, target_format):
    """An HxWx3 uint8 array from ``source_format`` to ``target_format`` (RGB <-> BGR)."""
    for name in (source_format, target_format):
        if name not in IMAGE_FORMATS:
            raise ValueError(f"image format {name!r} is not supported; use one of {IMAGE_FORMATS}")
    return image[:, :, ::-1] if source_format != target_format else image


def config_metadata(cfg):
    """Class names of the config's test dataset, for drawing and for json output.

    Uses the registered metadata (COCO and LVIS are registered by detectron2 on
    import), the embedded synthetic classes, or ``class_<i>`` names.
    """
    from ..data import SYNTHETIC_CLASSES

    names = cfg.dataloader.test.dataset.names
    name = names if isinstance(names, str) else names[0]
    registered = MetadataCatalog.get(name)
    if registered.get("thing_classes"):
        return registered
    if name.startswith("synthetic_shapes"):
        return Metadata(name=name, thing_classes=list(SYNTHETIC_CLASSES))
    num_classes = cfg.model.roi_heads.num_classes
    return Metadata(name=name, thing_classes=[f"class_{i}" for i in range(num_classes)])


class Predictor:
    """A detector in eval mode with its test-time preprocessing.

    Call it on one image (HxWx3 uint8 array in ``input_format``, or a path) to get
    its ``Instances``, or use :meth:`predict_batch` for a list.

    Attributes:
        model: the detector (eval mode, on ``device``).
        image_format: the format the model was trained on ("RGB" / "BGR").
        augmentations: the test mapper's transforms (e.g. resize shortest edge).
        metadata: class names of the config's test dataset.
    """

    def __init__(self, model, augmentations, image_format, metadata=None, device="cpu"):
        self.model = model.eval().to(device)
        # Wrapped once: building the wrapper walks every module to match its mode.
        self._detect = with_batch_pasting(self.model)
        self.augmentations = T.AugmentationList(list(augmentations))
        constraints = getattr(getattr(model, "backbone", None), "padding_constraints", {}) or {}
        self.square_size = constraints.get("square_size", 0)
        self.image_format = image_format
        self.metadata = metadata
        self.device = device

    @classmethod
    def from_config(cls, config, weights, device="cpu", overrides=(), max_input_size=None, **load_options):
        """Build the config's model, load ``weights`` (any source the checkpoint loader
        takes: path, URL, ``zoo://``) and read the test-time preprocessing.

        Args:
            config: path of a LazyConfig python file, or a loaded config.
            weights: checkpoint string; "" keeps the random initialisation.
            overrides: ``key=value`` config overrides.
            max_input_size: if set, first resize every image so its longer side is this
                many pixels (for configs whose test transforms expect inputs of one size,
                such as the 128-px demo); detections still come back in the original pixels.
            load_options: passed to :func:`d2backbones.checkpoint.load_checkpoint`.
        """
        cfg = LazyConfig.load(config) if isinstance(config, str) else config
        cfg = LazyConfig.apply_overrides(cfg, list(overrides))
        model = instantiate(cfg.model)
        if weights:
            load_checkpoint(model, weights, **load_options)
        mapper = instantiate(cfg.dataloader.test.mapper)
        model_format = cfg.model.get("input_format", mapper.image_format)
        if model_format != mapper.image_format:
            logger.warning("Config reads test images as %s but model.input_format is %s; following the test mapper.",
                           mapper.image_format, model_format)
        augmentations = list(mapper.augmentations.augs)
        if max_input_size:
            augmentations.insert(0, T.ResizeShortestEdge(short_edge_length=max_input_size, max_size=max_input_size))
        return cls(model, augmentations, mapper.image_format, config_metadata(cfg), device)

    def _model_input(self, image, input_format):
        if isinstance(image, str):
            image = read_image(image, format=self.image_format)
        else:
            image = _convert_format(np.asarray(image), input_format, self.image_format)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got an array of shape {image.shape}")
        height, width = image.shape[:2]
        transformed = T.AugInput(image)
        self.augmentations(transformed)
        if self.square_size and max(transformed.image.shape[:2]) > self.square_size:
            raise ValueError(
                f"a {height}x{width} image is {transformed.image.shape[0]}x{transformed.image.shape[1]} after the "
                f"config's test transforms, larger than the {self.square_size}-px square the model pads to; scale it "
                f"down first (max_input_size={self.square_size}, or --max-size {self.square_size} in tools/predict.py)"
            )
        tensor = torch.as_tensor(np.ascontiguousarray(transformed.image.transpose(2, 0, 1)).astype("float32"))
        return {"image": tensor.to(self.device), "height": height, "width": width}

    @torch.no_grad()
    def predict_batch(self, images, input_format="BGR"):
        """Detections for a list of images (arrays in ``input_format``, or paths).

        Returns a list of ``Instances`` on the CPU, in each image's pixel coordinates.
        """
        inputs = [self._model_input(image, input_format) for image in images]
        return [output["instances"].to("cpu") for output in self._detect(inputs)]

    def __call__(self, image, input_format="BGR"):
        """Detections of one image: an HxWx3 uint8 array in ``input_format``
        (BGR by default, as OpenCV reads it), or a path."""
        return self.predict_batch([image], input_format)[0]
