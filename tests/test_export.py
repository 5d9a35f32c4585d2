"""Export to TorchScript and ONNX (d2backbones.export, tools/export_model.py): the exported
graphs give the eager detections on inputs of other sizes than the traced one, for every
family; what cannot be exported is refused in one line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import load_tool
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, Instances

from d2backbones.engine.errors import UsageError
from d2backbones.export import ExportedDetector, compare_detections, export_detector, postprocess, raw_instances
from d2backbones.export.writer import write_onnx

FAMILIES = ["vitdet_tiny", "mimdet_tiny", "convnext_tiny", "swin_tiny"]
# Fewer detections: the heads and mask pasting would dominate the test.
FEW_DETECTIONS = ["model.roi_heads.box_predictor.test_topk_per_image=20", "model.proposal_generator.post_nms_topk=[300,50]"]
# Traced on the square of the stored position grid (MIMDet's 8 x 8 tokens, where a trace
# skipped the position resize), run on two other sizes: a smaller one and, where the
# model takes it (ViTDet pads to its 128-px square), a larger one: 10 x 9 tokens, of
# which a trace of MIMDet's sampling kept the traced 64.
TRACE_SIZE = (128, 128)
# onnxruntime vs eager, measured on these models: < 2e-5 px, < 1e-7 in score and mask.
ONNX_TOLERANCE = {"boxes": 1e-3, "scores": 1e-5, "masks": 1e-5}
EXACT = {"boxes": 1e-4, "scores": 1e-6, "masks": 0.0}


def sizes_for(detector):
    return [(72, 88), (160, 144) if detector.max_side is None else (96, 128)]


def image(size, seed):
    return torch.rand(3, *size, generator=torch.Generator().manual_seed(seed)) * 255


def demo_model(family):
    torch.manual_seed(0)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(f"configs/demo/{family}.py"), FEW_DETECTIONS)
    return instantiate(cfg.model).eval()


def inputs_of(size, seed):
    """One eager input: the original image was twice the size, so the boxes are resized."""
    return [{"image": image(size, seed), "height": 2 * size[0], "width": 2 * size[1]}]


def assert_agree(difference, tolerance):
    assert difference["expected"] == difference["actual"] > 0
    assert difference["unpaired"] == 0
    for key, limit in tolerance.items():
        assert difference[key] <= limit, (key, difference)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One thread, from the exports on: on the shared 2-core machine a second one mostly
    waits (as the ``one_thread`` fixture of conftest, which is function-scoped)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_thread_session():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return options


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory):
    """(model, directory): a seeded random demo detector, traced once, written in both formats."""
    model = demo_model(request.param)
    directory = str(tmp_path_factory.mktemp(request.param))
    export_detector(model, image(TRACE_SIZE, 0), ["torchscript", "onnx"], directory, check=False)
    return model, directory


@torch.no_grad()
def test_torchscript_gives_the_eager_outputs_at_other_sizes(exported):
    model, directory = exported
    detector = ExportedDetector(directory, "torchscript")
    for seed, size in enumerate(sizes_for(detector), start=1):
        inputs = inputs_of(size, seed)
        expected, actual = model(inputs)[0]["instances"], detector(inputs)[0]["instances"]
        assert actual.image_size == expected.image_size == (2 * size[0], 2 * size[1])
        # Boxes in the original image's pixels, pasted 0/1 masks: all of eager postprocessing.
        assert actual.pred_masks.shape == expected.pred_masks.shape
        assert_agree(compare_detections(expected, actual), EXACT)


@torch.no_grad()
def test_onnxruntime_gives_the_eager_outputs_at_other_sizes(exported):
    model, directory = exported
    detector = ExportedDetector(directory, "onnx", one_thread_session())
    fields = detector.fields
    for seed, size in enumerate(sizes_for(detector), start=1):
        inputs = inputs_of(size, seed)
        outputs = detector.run(inputs[0]["image"])
        # The graph's own outputs: boxes in the input's pixels, mask probabilities.
        raw = model.inference(inputs, do_postprocess=False)[0]
        assert_agree(compare_detections(raw, raw_instances(outputs, fields, size)), ONNX_TOLERANCE)
        # The documented Python postprocessing gives eager model(inputs), boxes resized 2x.
        expected = model(inputs)[0]["instances"]
        actual = postprocess(outputs, fields, size, 2 * size[0], 2 * size[1])["instances"]
        assert_agree(compare_detections(expected, actual), {"boxes": 2 * ONNX_TOLERANCE["boxes"], "scores": 1e-5})


def test_detections_are_paired_regardless_of_order():
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]])
    expected = Instances((32, 32), pred_boxes=Boxes(boxes), scores=torch.tensor([0.5, 0.5, 0.2]),
                         pred_classes=torch.tensor([0, 1, 0]))
    order = torch.tensor([1, 0, 2])
    swapped = Instances((32, 32), pred_boxes=Boxes(boxes[order]), scores=expected.scores[order],
                        pred_classes=expected.pred_classes[order])
    assert compare_detections(expected, swapped)["boxes"] == 0.0
    shifted = Instances((32, 32), pred_boxes=Boxes(boxes + 0.25), scores=expected.scores,
                        pred_classes=torch.tensor([0, 2, 0]))
    difference = compare_detections(expected, shifted)
    assert (difference["boxes"], difference["unpaired"]) == (0.25, 1)


@pytest.mark.parametrize("exported", ["vitdet_tiny"], indirect=True)
def test_vitdet_refuses_an_input_larger_than_its_square(exported):
    _, directory = exported
    detector = ExportedDetector(directory, "torchscript")
    assert detector.max_side == 128
    with pytest.raises(ValueError, match="larger than the 128-px square"):
        detector.run(image((96, 160), 0))


def test_mimdet_sampling_at_test_time_is_refused_in_one_line(tmp_path, capsys):
    tool = load_tool("export_model")
    with pytest.raises(SystemExit) as stop:
        tool.main(["--config-file", "configs/demo/mimdet_tiny.py", "--weights", "", "--format", "torchscript",
                   "--output", str(tmp_path), "model.backbone.bottom_up.test_sample_ratio=0.5"])
    assert stop.value.code == 2
    # The tool's own output is one "error:" line, the last one; a logging handler that an
    # earlier test left on a closed capture stream may report that above it.
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0]
    message = errors[0]
    assert "test_sample_ratio=0.5" in message and "test_sample_ratio=1.0" in message
    assert not os.listdir(tmp_path)


def test_an_onnx_exporter_failure_is_one_line_with_the_way_out(tmp_path, monkeypatch):
    def unsupported(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo\n(long explanation)")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(UsageError) as refused:
        write_onnx(None, None, str(tmp_path / "model.onnx"), ["pred_boxes"])
    message = str(refused.value)
    assert "\n" not in message
    assert "ONNX export of operator foo" in message and "--format torchscript" in message


def test_cli_exports_a_checkpoint_and_checks_it(tmp_path):
    model = demo_model("convnext_tiny")
    DetectionCheckpointer(model, str(tmp_path)).save("model")
    output = tmp_path / "exported"
    result = subprocess.run(
        [sys.executable, "tools/export_model.py", "--config-file", "configs/demo/convnext_tiny.py",
         "--weights", str(tmp_path / "model.pth"), "--format", "torchscript", "--output", str(output),
         *FEW_DETECTIONS],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "model.ts: max |difference| to eager" in result.stdout
    metadata = json.loads((output / "metadata.json").read_text())
    assert metadata["files"] == {"torchscript": "model.ts"} and metadata["image_format"] == "RGB"
    # The sample and its crop, both as the eager model gives them.
    assert [check["size"] for check in metadata["check"]["torchscript"]] == [[96, 128], [72, 96]]
    assert all(check["unpaired"] == 0 and check["boxes"] == 0.0 for check in metadata["check"]["torchscript"])
    sample = torch.from_numpy(np.load(output / metadata["input"]["sample"]))
    inputs = [{"image": sample, "height": 480, "width": 640}]
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
    assert_agree(compare_detections(expected, ExportedDetector(str(output))(inputs)[0]["instances"]), EXACT)
