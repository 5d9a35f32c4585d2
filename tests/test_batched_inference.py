"""The faster evaluation path gives detectron2's outputs: masks pasted many at a time
(``paste_masks``, ``with_batch_pasting``), COCO records with one RLE call per image,
and ROI heads run over chunks of RoIs (``ChunkedStandardROIHeads``)."""
import pytest
import torch
from conftest import MICRO_CONFIG
from detectron2.config import LazyConfig, instantiate
from detectron2.evaluation import COCOEvaluator as D2COCOEvaluator
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.layers.mask_ops import paste_masks_in_image
from detectron2.structures import Boxes, Instances

from d2backbones.data import register_synthetic_shapes
from d2backbones.evaluation import COCOEvaluator
from d2backbones.evaluation.coco_records import instances_to_coco_records
from d2backbones.inference.mask_paste import BatchPastingDetector, paste_masks, with_batch_pasting
from d2backbones.modeling import ChunkedStandardROIHeads

pytestmark = pytest.mark.usefixtures("one_thread")


def random_boxes(generator, count, height, width):
    """XYXY boxes inside the image: many small, some larger than the image's half
    (where sampling a whole window would reach past detectron2's region), some on
    the borders, some degenerate."""
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 1.2 - 8
    size = torch.rand(count, 2, generator=generator) ** 3 * torch.tensor([width, height])
    boxes = torch.cat([corner, corner + size], dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return boxes


@pytest.mark.parametrize("image_shape", [(128, 128), (75, 190), (480, 640)])
@pytest.mark.parametrize("threshold", [0.5, -1.0])
def test_paste_masks_gives_detectron2s_pixels(image_shape, threshold):
    generator = torch.Generator().manual_seed(image_shape[0])
    for count in (0, 1, 37):
        masks = torch.rand(count, 28, 28, generator=generator)
        boxes = random_boxes(generator, count, *image_shape)
        expected = paste_masks_in_image(masks, boxes, image_shape, threshold)
        pasted = paste_masks(masks, Boxes(boxes), image_shape, threshold)
        assert pasted.dtype == expected.dtype and torch.equal(pasted, expected)


@pytest.mark.parametrize("threshold", [0.1, -1.0])
def test_paste_masks_leaves_a_window_past_its_region_empty(threshold):
    """Two large boxes share a window; past the smaller one's region (box + 1 px) a
    full mask still samples to 0.14, which detectron2 never writes."""
    masks = torch.ones(2, 28, 28)
    boxes = torch.tensor([[0.0, 0.0, 150.2, 150.2], [0.0, 0.0, 148.6, 148.6]])
    expected = paste_masks_in_image(masks, boxes, (300, 300), threshold)
    assert torch.equal(paste_masks(masks, boxes, (300, 300), threshold), expected)


def test_paste_masks_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="one box per mask"):
        paste_masks(torch.rand(3, 28, 28), torch.zeros(2, 4), (64, 64))


def blob_instances(generator, count, image_shape):
    """Detections with compact masks, as a detector gives them."""
    instances = Instances(image_shape)
    boxes = random_boxes(generator, count, *image_shape)
    instances.pred_boxes = Boxes(boxes)
    instances.scores = torch.rand(count, generator=generator)
    instances.pred_classes = torch.randint(0, 4, (count,), generator=generator)
    instances.pred_masks = paste_masks(torch.rand(count, 28, 28, generator=generator).round(), boxes, image_shape)
    return instances


def test_coco_records_equal_detectron2s():
    generator = torch.Generator().manual_seed(0)
    for count, image_shape in ((0, (64, 64)), (1, (64, 80)), (25, (128, 96))):
        instances = blob_instances(generator, count, image_shape)
        assert instances_to_coco_records(instances, 7) == instances_to_coco_json(instances, 7)
    boxes_only = blob_instances(generator, 5, (64, 64))
    boxes_only.remove("pred_masks")
    assert instances_to_coco_records(boxes_only, 3) == instances_to_coco_json(boxes_only, 3)


def test_coco_evaluator_stores_detectron2s_predictions():
    register_synthetic_shapes()
    generator = torch.Generator().manual_seed(1)
    inputs = [{"image_id": i} for i in range(3)]
    outputs = [{"instances": blob_instances(generator, 10, (128, 128))} for _ in inputs]
    ours, theirs = COCOEvaluator("synthetic_shapes_val", distributed=False), D2COCOEvaluator("synthetic_shapes_val", distributed=False)
    for evaluator in (ours, theirs):
        evaluator.reset()
        evaluator.process(inputs, outputs)
    assert ours._predictions == theirs._predictions and len(ours._predictions) == 3


@pytest.fixture(scope="module")
def micro_detector():
    """The micro demo detector, random weights, eval mode, on two images: one at the
    model's size, one smaller whose outputs are scaled to another size."""
    torch.manual_seed(0)
    cfg = LazyConfig.load(MICRO_CONFIG)
    model = instantiate(cfg.model).eval()
    assert isinstance(model.roi_heads, ChunkedStandardROIHeads)
    generator = torch.Generator().manual_seed(0)
    inputs = [
        {"image": torch.rand(3, 64, 64, generator=generator) * 255},
        {"image": torch.rand(3, 48, 64, generator=generator) * 255, "height": 96, "width": 128},
    ]
    return model, inputs


def detections(outputs):
    return [o["instances"] for o in outputs]


def test_chunked_roi_heads_and_batch_pasting_give_detectron2s_detections(micro_detector):
    model, inputs = micro_detector
    with torch.no_grad():
        model.roi_heads.chunk_bytes = 0
        expected = detections(model(inputs))
        # A few RoIs a chunk: chunks cross image boundaries and leave images empty.
        model.roi_heads.chunk_bytes = 7 * 4 * 8 * 14 * 14 * 4
        fast = detections(with_batch_pasting(model)(inputs))
    for want, got in zip(expected, fast):
        assert len(want) > 10 and len(got) == len(want) and got.image_size == want.image_size
        assert torch.equal(got.pred_classes, want.pred_classes)
        torch.testing.assert_close(got.scores, want.scores, rtol=0, atol=1e-6)
        torch.testing.assert_close(got.pred_boxes.tensor, want.pred_boxes.tensor, rtol=0, atol=1e-4)
        # Pasted at boxes equal to 1e-4 px: at most a pixel's worth of disagreement.
        assert (got.pred_masks != want.pred_masks).float().mean() < 1e-3


def test_box_only_chunked_heads_give_detectron2s_boxes():
    """Box-only data turns the mask head off (no mask_head attribute at all)."""
    torch.manual_seed(0)
    model_cfg = LazyConfig.load(MICRO_CONFIG).model
    model_cfg.roi_heads.mask_in_features = model_cfg.roi_heads.mask_pooler = model_cfg.roi_heads.mask_head = None
    model = instantiate(model_cfg).eval()
    image = [{"image": torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2)) * 255}]
    with torch.no_grad():
        model.roi_heads.chunk_bytes = 0
        expected = detections(model(image))[0]
        model.roi_heads.chunk_bytes = 7 * 16 * 7 * 7 * 4
        got = detections(with_batch_pasting(model)(image))[0]
    assert len(got) == len(expected) > 10 and not got.has("pred_masks")
    assert torch.equal(got.pred_classes, expected.pred_classes)
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=0, atol=1e-4)


def test_batch_pasting_wraps_only_detectors(micro_detector):
    model, _ = micro_detector
    wrapped = with_batch_pasting(model)
    assert isinstance(wrapped, BatchPastingDetector) and wrapped.model is model and not wrapped.training
    other = torch.nn.Linear(2, 2)
    assert with_batch_pasting(other) is other
