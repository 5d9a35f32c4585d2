"""Writing an exported detector: the graph file(s), a sample input and ``metadata.json``.

One trace serves both formats. ONNX goes through torch's TorchScript-based exporter
(``dynamo=False``): ``torch.export`` (``dynamo=True``) stops at detectron2's
padding, which under tracing computes the padded size as a tensor, so the Python
branches on it that follow (e.g. ViT's patch-size check) become data-dependent
guards it cannot resolve.
"""
import importlib.util
import json
import os
import warnings

import numpy as np
import torch

from ..engine.config import load_config
from ..engine.errors import UsageError
from ..inference.predictor import Predictor
from .check import check_export
from .runtime import METADATA_FILE, ExportedDetector
from .tracing import OUTPUT_SHAPES, check_exportable, first_line, max_input_side, output_fields, quiet_jit, trace

__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "SAMPLE_FILE", "export_detector", "export_from_config", "write_onnx"]

EXPORT_FORMATS = {"torchscript": "model.ts", "onnx": "model.onnx"}
SAMPLE_FILE = "sample_input.npy"
# ROIAlign's aligned=True (detectron2's ROIPooler) is ONNX RoiAlign's "half_pixel" mode, opset 16 on.
ONNX_OPSET = 17
# The sample when none is given: noise of a common photo size, put through the config's test transforms.
DEFAULT_SAMPLE_SIZE = (480, 640)


def write_onnx(traced, image, path, fields):
    """Export a traced detector to ONNX, the input's height and width and the number of
    detections left dynamic."""
    dynamic_axes = {"image": {1: "height", 2: "width"}, **{name: {0: "detections"} for name in fields}}
    # The exporter runs the graph once for its output types; the JIT's optimising first
    # runs of a large graph only cost time there (measured: 7.7 s -> 1.5 s for tiny Swin).
    with torch.jit.optimized_execution(False), quiet_jit():
        # A traced module has no Python signature: its one input is passed by position.
        warnings.filterwarnings("ignore", "no signature found", UserWarning)
        # It warns about negative index tensors; detectron2's come from nonzero, arange and topk.
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        # This exporter is deprecated, and the one that works here (see the module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(
                traced, (image,), path, dynamo=False, opset_version=ONNX_OPSET,
                input_names=["image"], output_names=list(fields), dynamic_axes=dynamic_axes,
            )
        except RuntimeError as error:  # torch.onnx's own errors are RuntimeErrors
            raise UsageError(
                f"ONNX export failed ({first_line(error)}): the graph has an op that opset {ONNX_OPSET} cannot "
                f"express; export with --format torchscript, which runs the same trace"
            ) from error


def _require_onnxruntime():
    if importlib.util.find_spec("onnxruntime") is None:
        raise UsageError("checking the ONNX file needs onnxruntime, which is not installed: pip install onnx onnxruntime")


def export_detector(model, image, formats, output_dir, description=None, check=True):
    """Trace ``model`` on ``image`` and write it in each of ``formats``.

    Writes ``model.ts`` / ``model.onnx``, ``sample_input.npy`` (``image``) and
    ``metadata.json`` (files, input, outputs, ``description`` and, with ``check``, the
    exported-vs-eager differences of :func:`~.check.check_export` per format).

    Args:
        model: a detector; put in eval mode.
        image (Tensor): (3, H, W) float32 preprocessed image to trace with.
        formats (list[str]): keys of :data:`EXPORT_FORMATS`.
        description (dict): what to record of the model's origin and preprocessing.

    Returns:
        dict: the metadata written.
    """
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown:
        raise UsageError(f"unknown export format {unknown[0]!r}: use {' or '.join(EXPORT_FORMATS)}")
    if "onnx" in formats and check:
        _require_onnxruntime()
    model.eval()
    check_exportable(model)
    fields = output_fields(model)
    os.makedirs(output_dir, exist_ok=True)
    traced = trace(model, image)
    files = {name: EXPORT_FORMATS[name] for name in formats}
    if "torchscript" in files:
        with quiet_jit():
            torch.jit.save(traced, os.path.join(output_dir, files["torchscript"]))
    if "onnx" in files:
        write_onnx(traced, image, os.path.join(output_dir, files["onnx"]), fields)
    np.save(os.path.join(output_dir, SAMPLE_FILE), image.cpu().numpy())
    metadata = {
        "files": files,
        "input": {
            "name": "image",
            "shape": "(3, H, W) float32, 0-255, not normalised (the graph normalises)",
            "sample": SAMPLE_FILE,
            "sample_shape": list(image.shape),
            "max_side": max_input_side(model),
        },
        "outputs": fields,
        "output_shapes": {name: OUTPUT_SHAPES[name] for name in fields},
        "postprocess": "d2backbones.export.postprocess(outputs, outputs_names, (H, W), height, width)",
        "onnx_opset": ONNX_OPSET if "onnx" in files else None,
        "torch": torch.__version__,
        **(description or {}),
    }
    _write_metadata(output_dir, metadata)
    if check:
        metadata["check"] = {name: check_export(model, ExportedDetector(output_dir, name), image) for name in files}
        _write_metadata(output_dir, metadata)
    return metadata


def _write_metadata(output_dir, metadata):
    with open(os.path.join(output_dir, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2)


def _sample_array(sample_image):
    if sample_image is not None:
        if not os.path.isfile(sample_image):
            raise FileNotFoundError(f"--sample-image {sample_image}: no such file")
        return sample_image
    return np.random.default_rng(0).integers(0, 256, (*DEFAULT_SAMPLE_SIZE, 3), dtype=np.uint8)


def export_from_config(config_file, weights, formats, output_dir, overrides=(), sample_image=None, check=True,
                       **load_options):
    """Export a LazyConfig detector with its weights (see :func:`export_detector`).

    The sample is ``sample_image`` (a path), or noise of 480 x 640 pixels, put through
    the config's test transforms and colour order, as :class:`~d2backbones.inference.Predictor`
    does; ``metadata.json`` records those transforms, the colour order and the class names.
    """
    cfg = load_config(config_file, overrides)
    predictor = Predictor.from_config(cfg, weights, **load_options)
    image = predictor._model_input(_sample_array(sample_image), "RGB")["image"]
    description = {
        "config": config_file,
        "weights": weights,
        "overrides": list(overrides),
        "image_format": predictor.image_format,
        "test_transforms": [repr(aug) for aug in predictor.augmentations.augs],
        "classes": list(predictor.metadata.get("thing_classes", [])),
    }
    return export_detector(predictor.model, image, formats, output_dir, description, check)
