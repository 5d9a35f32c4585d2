"""Test-time augmentation (d2backbones.inference.tta): exactness at one identity scale,
flip merging on a hand-made case, soft-NMS, every family's demo model, and the CLI."""
import contextlib
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import dataset_flags, load_script
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, Instances
from omegaconf import OmegaConf

from d2backbones.engine import cli, train_loop
from d2backbones.inference.tta import (
    DetectorWithTTA, _padded_to, maybe_with_tta, merge_detections, weighted_boxes_fusion,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILY_CONFIGS = ["configs/demo/vitdet_tiny.py", "configs/demo/mimdet_tiny.py", "configs/demo/convnext_tiny.py", "configs/demo/swin_tiny.py"]
SIDE = 128


def demo_model(config):
    """The untrained demo detector in eval mode; every RoI scored, so there is output."""
    cfg = LazyConfig.load(config)
    cfg.model.roi_heads.box_predictor.test_score_thresh = 0.0
    return instantiate(cfg.model).eval()


def image_input(side=SIDE):
    """A seeded random image as a dataset dict at its original size."""
    generator = torch.Generator().manual_seed(3)
    image = torch.randint(0, 256, (3, side, side), generator=generator, dtype=torch.uint8)
    return {"image": image, "height": side, "width": side}


@pytest.mark.parametrize("config", FAMILY_CONFIGS)
def test_one_identity_scale_without_flip_is_plain_inference(config):
    model = demo_model(config)
    with torch.no_grad():
        plain = model([image_input()])[0]["instances"]
        tta = DetectorWithTTA(model, min_sizes=[SIDE], max_size=SIDE, flip=False)([image_input()])[0]["instances"]
    assert len(plain) > 0
    assert torch.equal(tta.pred_boxes.tensor, plain.pred_boxes.tensor)
    assert torch.equal(tta.scores, plain.scores)
    assert torch.equal(tta.pred_classes, plain.pred_classes)
    assert torch.equal(tta.pred_masks, plain.pred_masks)


@pytest.mark.parametrize("config", FAMILY_CONFIGS)
def test_flip_and_three_scales_run_for_every_family(config):
    """Scales below, at and above the 128-px demo side (and ViTDet's padding square)."""
    model = demo_model(config)
    with torch.no_grad():
        out = DetectorWithTTA(model, min_sizes=[96, 128, 160], flip=True)([image_input()])[0]["instances"]
    assert out.image_size == (SIDE, SIDE)
    assert len(out) > 0
    assert out.pred_masks.shape[1:] == (SIDE, SIDE)
    assert out.pred_boxes.tensor.min() >= 0 and out.pred_boxes.tensor.max() <= SIDE


def test_vitdet_copies_above_its_padding_square_get_their_own_square():
    """The 160-px copies are padded to 160 (not cropped to the 128 square), the others
    to the model's square, and the model's square is restored afterwards."""
    model = demo_model("configs/demo/vitdet_tiny.py")
    tta = DetectorWithTTA(model, min_sizes=[96, 160], max_size=4000)
    copies = tta.mapper(image_input())
    assert [tuple(c["image"].shape[1:]) for c in copies] == [(96, 96), (96, 96), (160, 160), (160, 160)]
    padded = []
    real_backbone_forward = model.backbone.forward
    model.backbone.forward = lambda x: padded.append(tuple(x.shape[2:])) or real_backbone_forward(x)
    with torch.no_grad():
        out = tta([image_input()])[0]["instances"]
    assert sorted(set(padded)) == [(SIDE, SIDE), (160, 160)]
    assert model.backbone.padding_constraints["square_size"] == SIDE
    assert out.image_size == (SIDE, SIDE) and len(out) > 0
    # Copies that fit take the model's square; larger ones the next multiple of the coarsest stride (16).
    assert tta._copy_square({"image": torch.zeros(3, 96, 120)}) == SIDE
    assert tta._copy_square({"image": torch.zeros(3, 150, 100)}) == 160


class MirroredObject:
    """Stands in for the detector's two passes (``DetectorWithTTA._box_pass`` and
    ``_mask_pass``): the input image is bright on its left half, so an unflipped copy
    "sees" the object at BOX (mask on the box's left half) and a flipped copy sees it
    mirrored (box mirrored, mask on the box's right half). Its "features" are the copies."""

    BOX = [10.0, 20.0, 40.0, 60.0]

    @staticmethod
    def flipped(image):
        width = image.shape[2]
        return bool(image[:, :, : width // 2].float().mean() < image[:, :, width // 2 :].float().mean())

    def box_pass(self, inputs):
        outputs = []
        for x in inputs:
            width = x["image"].shape[2]
            x0, y0, x1, y1 = self.BOX
            flipped = self.flipped(x["image"])
            inst = Instances(tuple(x["image"].shape[1:]))
            inst.pred_boxes = Boxes(torch.tensor([[width - x1, y0, width - x0, y1] if flipped else self.BOX]))
            inst.scores = torch.tensor([0.8 if flipped else 0.9])
            inst.pred_classes = torch.tensor([1])
            outputs.append(inst)
        return outputs, [(list(range(len(inputs))), inputs)]

    def mask_pass(self, features_by_chunk, given):
        for chunk, inputs in features_by_chunk:
            for i in chunk:
                flipped = self.flipped(inputs[i]["image"])
                masks = torch.zeros(len(given[i]), 1, 28, 28)
                masks[..., 14:] = 1.0 if flipped else 0.0
                masks[..., :14] = 0.0 if flipped else 1.0
                given[i].pred_masks = masks
        return given


def test_flip_merging_on_a_hand_made_case(monkeypatch):
    tta = DetectorWithTTA(demo_model("configs/demo/convnext_tiny.py"), min_sizes=[SIDE], flip=True)
    monkeypatch.setattr(tta, "_box_pass", MirroredObject().box_pass)
    monkeypatch.setattr(tta, "_mask_pass", MirroredObject().mask_pass)
    image = torch.zeros(3, SIDE, SIDE, dtype=torch.uint8)
    image[:, :, : SIDE // 2] = 255
    out = tta([{"image": image, "height": SIDE, "width": SIDE}])[0]["instances"]
    # The mirrored detection maps back onto the unflipped one: NMS keeps the better score.
    assert len(out) == 1
    assert out.pred_boxes.tensor.tolist() == [MirroredObject.BOX]
    assert out.scores.tolist() == [pytest.approx(0.9)]
    assert out.pred_classes.tolist() == [1]
    # The flipped copy's mask is mirrored back before averaging: the left half of the box only.
    mask = out.pred_masks[0]
    assert mask[20:60, 11:24].all()
    assert not mask[:, 26:].any() and not mask[:, :10].any()


def boxes_only(instances):
    """A copy of detections without masks, for a mask head to fill in."""
    copied = Instances(instances.image_size)
    for field in ("pred_boxes", "scores", "pred_classes"):
        copied.set(field, instances.get(field).clone() if field != "pred_boxes" else instances.pred_boxes.clone())
    return copied


@torch.no_grad()
def test_each_copy_goes_through_the_backbone_once_and_both_passes_equal_model_inference():
    """The mask pass reads the box pass's features: one backbone call per chunk of
    copies, and the same boxes and masks as ``model.inference`` (which would run the
    backbone again for the masks), bit for bit."""
    model = demo_model("configs/demo/vitdet_tiny.py")
    tta = DetectorWithTTA(model, min_sizes=[96, 160], max_size=4000)
    copies = tta.mapper(image_input())
    for copy_input in copies:
        copy_input.pop("transforms")
    calls = []
    real_backbone_forward = model.backbone.forward
    model.backbone.forward = lambda x: calls.append(tuple(x.shape[2:])) or real_backbone_forward(x)
    with tta._masks_off():
        boxes, features_by_chunk = tta._box_pass(copies)
    masks = tta._mask_pass(features_by_chunk, [boxes_only(b) for b in boxes])
    # Two chunks: the 96-px copies padded to the model's square, the 160-px ones to 160.
    assert calls == [(SIDE, SIDE), (160, 160)]

    model.backbone.forward = real_backbone_forward
    for chunk, _ in features_by_chunk:
        chunk_copies = [copies[i] for i in chunk]
        with contextlib.ExitStack() as stack:
            side = max(chunk_copies[0]["image"].shape[1:])
            if side > SIDE:
                stack.enter_context(_padded_to(model.backbone, side))
            with tta._masks_off():
                reference_boxes = model.inference(chunk_copies, do_postprocess=False)
            reference_masks = model.inference(chunk_copies, [boxes_only(boxes[i]) for i in chunk],
                                              do_postprocess=False)
        for i, box_ref, mask_ref in zip(chunk, reference_boxes, reference_masks):
            assert len(boxes[i]) > 0
            assert torch.equal(boxes[i].pred_boxes.tensor, box_ref.pred_boxes.tensor)
            assert torch.equal(boxes[i].scores, box_ref.scores)
            assert torch.equal(masks[i].pred_masks, mask_ref.pred_masks)


def test_soft_nms_decays_an_overlapping_box_instead_of_dropping_it():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [50.0, 50.0, 60.0, 60.0]])
    scores, classes = torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 0])
    nms = merge_detections(boxes, scores, classes, (100, 100), 1, 0.3, -1, merge="nms")
    soft = merge_detections(boxes, scores, classes, (100, 100), 1, 0.3, -1, merge="soft_nms", sigma=0.5)
    assert nms.scores.tolist() == pytest.approx([0.9, 0.7])
    # IoU of the first two boxes is 0.5: 0.8 * exp(-0.25 / 0.5).
    assert soft.scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-0.5)])
    assert soft.pred_boxes.tensor[2].tolist() == [0.0, 0.0, 10.0, 5.0]


def test_weighted_boxes_fusion_averages_boxes_and_discounts_objects_few_copies_find():
    """Two copies: both find the object on the left, only one the object on the right,
    and a box of another class on the left object fuses with nothing."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0], [50.0, 50.0, 60.0, 60.0],
                          [0.0, 0.0, 10.0, 10.0]])
    scores, classes = torch.tensor([0.6, 0.2, 0.9, 0.5]), torch.tensor([0, 0, 0, 1])
    merged = merge_detections(boxes, scores, classes, (100, 100), 2, 0.5, -1, merge="wbf", num_copies=2)
    # Left object: the score-weighted mean box, the mean score; right object: half its
    # score (one copy of two); class 1: likewise half.
    assert merged.scores.tolist() == pytest.approx([0.45, 0.4, 0.25])
    assert merged.pred_classes.tolist() == [0, 0, 1]
    assert merged.pred_boxes.tensor.tolist() == [
        [50.0, 50.0, 60.0, 60.0], [pytest.approx(0.5), 0.0, pytest.approx(10.5), 10.0], [0.0, 0.0, 10.0, 10.0]]
    # Boxes that overlap less than the threshold stay apart, at most num_copies share.
    apart = merge_detections(boxes[:2], scores[:2], classes[:2], (100, 100), 2, 0.8, -1, merge="wbf", num_copies=2)
    assert apart.scores.tolist() == pytest.approx([0.3, 0.1])


@pytest.mark.parametrize("seed", range(3))
def test_weighted_boxes_fusion_equals_the_step_by_step_torch_form_bit_for_bit(seed):
    """Six jittered copies of 40 objects in 3 classes, as TTA gives them: clusters form."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(40, 2, generator=generator) * 100
    objects = torch.cat([corners, corners + 5 + torch.rand(40, 2, generator=generator) * 30], dim=1)
    boxes = (objects.repeat(6, 1) + torch.randn(240, 4, generator=generator) * 2).clamp(min=0)
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    scores = torch.rand(240, generator=generator)
    classes = torch.randint(0, 3, (40,), generator=generator).repeat(6)
    fused = weighted_boxes_fusion(boxes, scores, classes, 6, 0.55)
    # benchmarks/tta_speed.py's box-by-box torch fusion is the oracle.
    reference = load_script("benchmarks/tta_speed.py").torch_weighted_boxes_fusion(boxes, scores, classes, 6, 0.55)
    assert 40 <= len(fused[0]) < 240
    for ours, theirs in zip(fused, reference):
        assert torch.equal(ours, theirs)


def test_aug_settings_default_to_off_and_reject_unknown_keys():
    model = demo_model("configs/demo/convnext_tiny.py")
    assert maybe_with_tta(OmegaConf.create({}), model) is model
    on = OmegaConf.create({"test": {"aug": {"enabled": True, "min_sizes": [96, 128]}}})
    assert isinstance(maybe_with_tta(on, model), DetectorWithTTA)
    with pytest.raises(KeyError, match="unknown keys"):
        maybe_with_tta(OmegaConf.create({"test": {"aug": {"enabled": True, "min_size": [96]}}}), model)
    with pytest.raises(ValueError, match="min_sizes is empty"):
        maybe_with_tta(OmegaConf.create({"test": {"aug": {"enabled": True}}}), model)


def test_eval_only_with_tta_from_the_command_line(tiny_shapes, tmp_path, monkeypatch):
    common = [
        "--config-file", "configs/demo/vitdet_tiny.py",
        *dataset_flags("tta_train", tiny_shapes["train"]),
        *dataset_flags("tta_val", tiny_shapes["val"]),
        "dataloader.train.dataset.names=tta_train",
        "dataloader.test.dataset.names=tta_val",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
    ]
    cli.main(cli.build_parser().parse_args(
        common + [f"train.output_dir={tmp_path}", "train.max_iter=3", "train.eval_period=0", "dataloader.evaluator=null"]
    ))
    evaluated = []
    real_inference = train_loop.inference_on_dataset
    monkeypatch.setattr(train_loop, "inference_on_dataset", lambda m, *a: evaluated.append(m) or real_inference(m, *a))
    cli.main(cli.build_parser().parse_args(["--eval-only"] + common + [
        f"train.output_dir={tmp_path / 'eval'}", f"train.init_checkpoint={tmp_path}/model_final.pth",
        "test.aug.enabled=True", "test.aug.min_sizes=[96,128,160]", "test.aug.flip=True",
    ]))
    assert [type(m) for m in evaluated] == [DetectorWithTTA]
    assert evaluated[0].mapper.min_sizes == [96, 128, 160] and evaluated[0].mapper.flip
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert "bbox" in json.dumps(results) and "segm" in json.dumps(results)


def test_tta_speed_benchmark_checks_the_paths_agree_then_times_them(tmp_path):
    """benchmarks/tta_speed.py on 2 val images of an untrained demo (every RoI scored, so
    there are detections to fuse and masks to compare); no timing is asserted."""
    output = tmp_path / "tta_speed.json"
    command = [sys.executable, "benchmarks/tta_speed.py", "--batches", "1", "--rounds", "1", "--threads", "1",
               "--min-sizes", "96", "128", "--output", str(output), "dataloader.test.batch_size=2",
               "model.roi_heads.box_predictor.test_score_thresh=0.0"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "both paths give equal detections" in completed.stdout
    record = json.loads(output.read_text())
    assert record["images"] == 2 and record["detections_per_image"] > 0
    assert all(record["s_per_image"]["wall"][path] > 0 for path in ("before", "now"))

    refused = subprocess.run(command[:2] + ["--rounds", "0"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("tta_speed: --batches and --rounds must be at least 1")
