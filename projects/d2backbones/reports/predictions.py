"""Predictions drawn on held-out images, tile by tile as ``tools/predict.py`` draws them."""
import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from PIL import Image

from ..inference.outputs import draw_instances


@torch.no_grad()
def draw_predictions(model, dataset_name, png_path, num_images=6, score_threshold=0.3, input_format="RGB", scale=2.0):
    """Run ``model`` on the first ``num_images`` of ``dataset_name`` and save a grid PNG.

    Each tile shows the detections above ``score_threshold`` (boxes, masks, labels).
    """
    metadata = MetadataCatalog.get(dataset_name)
    records = DatasetCatalog.get(dataset_name)[:num_images]
    was_training = model.training
    model.eval()
    tiles = []
    for record in records:
        image = read_image(record["file_name"], format=input_format)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)).astype("float32"))
        outputs = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0]
        instances = outputs["instances"].to("cpu")
        instances = instances[instances.scores >= score_threshold]
        rgb = image if input_format == "RGB" else image[:, :, ::-1]
        tiles.append(draw_instances(rgb, instances, metadata, scale=scale))
    model.train(was_training)
    height = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    Image.fromarray(np.concatenate(padded, axis=1)).save(png_path)
    return png_path
