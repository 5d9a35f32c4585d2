"""Detections as COCO result records, every mask of an image RLE-encoded in one call.

detectron2's ``instances_to_coco_json`` copies each predicted mask into its own
Fortran-ordered array and encodes it alone: with 100 masks an image, the copies
and calls are most of ``COCOEvaluator.process``. pycocotools encodes an
(H, W, N) stack in one call; the (N, H, W) bool masks, with height and width
swapped, already lie in memory in that stack's Fortran order.
"""
import numpy as np
import pycocotools.mask as mask_util
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.structures import BoxMode

__all__ = ["encode_masks", "instances_to_coco_records"]


def encode_masks(masks):
    """COCO RLEs (``counts`` as str) of (N, H, W) bool or uint8 CPU masks, one per mask."""
    stacked = masks.transpose(1, 2).contiguous().numpy().view(np.uint8).transpose(2, 1, 0)
    rles = mask_util.encode(stacked)
    for rle in rles:
        # json writes str, not the bytes pycocotools returns; its counts are ASCII.
        rle["counts"] = rle["counts"].decode("utf-8")
    return rles


def instances_to_coco_records(instances, image_id):
    """The records of detectron2's ``instances_to_coco_json`` (same keys, values and
    order) for CPU ``Instances``; keypoint predictions go through detectron2's own."""
    if len(instances) == 0:
        return []
    if instances.has("pred_keypoints"):
        return instances_to_coco_json(instances, image_id)
    boxes = BoxMode.convert(instances.pred_boxes.tensor.numpy(), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS).tolist()
    records = [
        {"image_id": image_id, "category_id": category, "bbox": box, "score": score}
        for category, box, score in zip(instances.pred_classes.tolist(), boxes, instances.scores.tolist())
    ]
    if instances.has("pred_masks"):
        for record, rle in zip(records, encode_masks(instances.pred_masks)):
            record["segmentation"] = rle
    return records
