"""What an exported detector computes, and the trace of it.

The graph is the detector's ``inference`` on one preprocessed image, without the last
step of eager ``model(inputs)``: resizing the detections to the original image and
pasting the masks (:func:`d2backbones.export.postprocess` does that in Python). Its
outputs are plain tensors, in the order of :func:`output_fields`.
"""
import contextlib
import warnings
from functools import partial

import torch
from detectron2.export import TracingAdapter

from ..engine.errors import UsageError

__all__ = [
    "OUTPUT_SHAPES", "check_exportable", "detections", "first_line", "max_input_side", "output_fields", "quiet_jit", "trace",
]

# Output name -> what it holds, for N detections of an H x W input.
OUTPUT_SHAPES = {
    "pred_boxes": "(N, 4) float32, XYXY boxes in the input's pixels",
    "scores": "(N,) float32",
    "pred_classes": "(N,) int64, contiguous class ids",
    "pred_masks": "(N, 1, M, M) float32 mask probabilities in each box (M = 28 for the standard mask head)",
}


def check_exportable(model):
    """Raise :class:`UsageError` (one line: why, and the fix) for a model whose eval
    computation a traced graph cannot reproduce."""
    if not (hasattr(model, "inference") and hasattr(model, "roi_heads")):
        raise UsageError(
            f"{type(model).__name__} is not an R-CNN detector (no roi_heads): only detector configs export, "
            "e.g. configs/<Family>/COCO/*.py or configs/demo/*.py"
        )
    for name, module in model.named_modules():
        ratio = getattr(module, "test_sample_ratio", 1.0)
        if ratio < 1.0:
            raise UsageError(
                f"model.{name}.test_sample_ratio={ratio}: the backbone then encodes a random share of the tokens "
                f"at test time, which a trace would freeze to the traced image's draw; export with "
                f"model.{name}.test_sample_ratio=1.0 (the setting of the published APs)"
            )


def output_fields(model):
    """Names of the exported outputs, in graph order: boxes, scores, classes (and masks)."""
    fields = ["pred_boxes", "scores", "pred_classes"]
    if getattr(model.roi_heads, "mask_on", False):
        fields.append("pred_masks")
    return fields


def max_input_side(model):
    """The largest input side the model takes, or None: models that pad every input to a
    fixed square (ViTDet's ``square_pad``) would crop a larger one."""
    constraints = getattr(model.backbone, "padding_constraints", {}) or {}
    return constraints.get("square_size") or None


def detections(model, image, fields):
    """The eager computation that is traced: (3, H, W) image -> tensors named ``fields``,
    in the input's pixels (no resize to the original image)."""
    instances = model.inference([{"image": image}], do_postprocess=False)[0]
    return tuple(instances.pred_boxes.tensor if name == "pred_boxes" else instances.get(name) for name in fields)


@contextlib.contextmanager
def quiet_jit():
    """Silence what tracing and exporting a detector always warns about: every shape read
    and Python branch (TracerWarning), and torch's deprecation of TorchScript. The export
    check (:mod:`.check`) runs a second input size instead of trusting the trace."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        yield


def trace(model, image):
    """``torch.jit.trace`` of :func:`detections` through detectron2's ``TracingAdapter``
    (which makes ``len()`` of tensors traceable and runs without gradients).

    Args:
        model: a detector in eval mode (see :func:`check_exportable`).
        image (Tensor): (3, H, W) float32 preprocessed image, as ``model`` takes it.

    Returns:
        torch.jit.ScriptModule: (3, H', W') image -> tuple of tensors, :func:`output_fields`.
    """
    check_exportable(model)
    adapter = TracingAdapter(model, image, partial(detections, fields=output_fields(model)))
    # A new module is in training mode; the ONNX exporter copies that mode onto the model.
    adapter.eval()
    try:
        with quiet_jit():
            return torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
    except RuntimeError as error:
        raise UsageError(
            f"torch.jit.trace failed on {type(model).__name__} ({first_line(error)}): the model has a step a trace "
            f"cannot record, so it runs eagerly only (tools/predict.py)"
        ) from error


def first_line(error):
    """``Type: first line of the message``, for one-line reports."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
