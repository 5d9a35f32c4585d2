"""Random detectron2 training inputs: images with boxes, classes and masks."""
import torch
from detectron2.structures import BitMasks, Boxes, Instances

__all__ = ["synthetic_batch"]


def synthetic_batch(batch_size, input_size, num_classes, seed=0, boxes_per_image=5, device="cpu"):
    """Random images with random boxes, classes and box-shaped masks (detectron2's input format).

    Args:
        input_size (tuple[int, int]): (height, width) of every image.

    Returns:
        list[dict]: ``batch_size`` dicts with "image" (3, H, W) uint8, "height", "width" and
        "instances" holding ``boxes_per_image`` gt_boxes (N, 4) XYXY inside the image, at least
        8 px wide and high where the image allows, gt_classes (N,) and gt_masks (N, H, W).
    """
    generator = torch.Generator().manual_seed(seed)
    height, width = input_size
    batch = []
    for _ in range(batch_size):
        image = torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
        corners = torch.rand(boxes_per_image, 2, 2, generator=generator) * torch.tensor([width, height])
        top_left = corners.min(1).values
        bottom_right = torch.maximum(corners.max(1).values, top_left + 8).minimum(torch.tensor([width, height]))
        boxes = torch.cat([top_left, bottom_right], dim=1)
        masks = torch.zeros(boxes_per_image, height, width, dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.round().long().tolist()):
            mask[y0:y1, x0:x1] = True
        instances = Instances(
            (height, width),
            gt_boxes=Boxes(boxes),
            gt_classes=torch.randint(0, num_classes, (boxes_per_image,), generator=generator),
            gt_masks=BitMasks(masks),
        )
        batch.append({"image": image.to(device), "height": height, "width": width, "instances": instances.to(device)})
    return batch
