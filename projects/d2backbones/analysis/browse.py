"""Training samples as the model sees them: ground truth drawn after the train mapper.

The samples come from the loader training builds (:func:`~d2backbones.engine.data_loading.build_train_loader`):
the config's own ``dataloader.train`` with its mapper and augmentations (LSJ's
scale jitter and crop, flips, resizes), seeded as training seeds it. Each is drawn
beside its image as loaded, so what the augmentations did is plain to see.
"""
import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import convert_image_to_rgb, read_image
from detectron2.structures import BitMasks, Instances, PolygonMasks
from detectron2.utils.visualizer import Visualizer

from ..engine.data_loading import build_train_loader
from ..engine.datasets import dataset_names
from ..inference.outputs import draw_instances

__all__ = ["draw_sample", "mapped_samples", "original_records"]


def mapped_samples(cfg, num_images, seed=0):
    """The first ``num_images`` samples of ``cfg``'s training loader, as the mapper made
    them (``image``: uint8 C x H x W in ``mapper.image_format``; ``instances`` with
    ``gt_boxes``, ``gt_classes`` and ``gt_masks`` when the mapper keeps masks)."""
    loader = build_train_loader(cfg, seed=seed, strict=cfg.train.get("strict_data", False))
    samples = []
    for batch in loader:
        samples.extend(batch)
        if len(samples) >= num_images:
            break
    return samples[:num_images]


def original_records(cfg):
    """The training datasets' records as loaded (before the mapper), by ``file_name``."""
    return {r["file_name"]: r for name in dataset_names(cfg.dataloader.train) for r in DatasetCatalog.get(name)}


def _as_instances(sample_instances):
    """A mapped sample's ground truth as the ``Instances`` that ``draw_instances`` draws."""
    height, width = sample_instances.image_size
    drawn = Instances((height, width))
    drawn.pred_boxes = sample_instances.gt_boxes
    drawn.pred_classes = sample_instances.gt_classes
    if sample_instances.has("gt_masks"):
        masks = sample_instances.gt_masks
        if isinstance(masks, PolygonMasks):
            masks = BitMasks.from_polygon_masks(masks, height, width)
        drawn.pred_masks = torch.as_tensor(masks.tensor, dtype=torch.bool)
    return drawn


def draw_sample(sample, metadata, image_format, original=None, scale=1.0):
    """A mapped sample drawn (RGB, H x W x 3 uint8): its boxes, classes and masks on the
    augmented image at ``scale``, to the right of ``original`` (the record as loaded),
    when given, drawn at the same height."""
    rgb = convert_image_to_rgb(sample["image"].permute(1, 2, 0).numpy(), image_format)
    after = draw_instances(np.ascontiguousarray(rgb, dtype=np.uint8), _as_instances(sample["instances"]), metadata, scale)
    if original is None:
        return after
    loaded = read_image(original["file_name"], format="RGB")
    before = Visualizer(loaded, metadata, scale=after.shape[0] / loaded.shape[0]).draw_dataset_dict(original).get_image()
    height = max(before.shape[0], after.shape[0])
    gap = np.full((height, 8, 3), 255, dtype=np.uint8)
    pad = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in (before, after)]
    return np.concatenate([pad[0], gap, pad[1]], axis=1)
