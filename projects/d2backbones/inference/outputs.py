"""What ``tools/predict.py`` writes: drawn detections and COCO-format json records."""
import numpy as np
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.visualizer import Visualizer

__all__ = ["draw_instances", "coco_records"]


def draw_instances(rgb_image, instances, metadata, scale=1.0):
    """``rgb_image`` (HxWx3 uint8, RGB) with boxes, masks and labels drawn; same layout."""
    drawn = Visualizer(rgb_image, metadata, scale=scale).draw_instance_predictions(instances)
    return drawn.get_image()


def coco_records(instances, image_id, file_name, metadata):
    """COCO result records (``image_id``, ``category_id``, ``bbox`` as XYWH, ``score``,
    ``segmentation`` as RLE when the model predicts masks), plus ``file_name`` and
    ``category_name``. Category ids are the dataset's own when its metadata maps them."""
    records = instances_to_coco_json(instances, image_id)
    to_dataset_id = {v: k for k, v in metadata.get("thing_dataset_id_to_contiguous_id", {}).items()}
    names = metadata.get("thing_classes", [])
    for record in records:
        contiguous = record["category_id"]
        record["category_id"] = int(to_dataset_id.get(contiguous, contiguous))
        record["category_name"] = names[contiguous] if contiguous < len(names) else str(contiguous)
        record["file_name"] = file_name
        record["bbox"] = [float(np.round(v, 2)) for v in record["bbox"]]
        record["score"] = float(np.round(record["score"], 4))
    return records
