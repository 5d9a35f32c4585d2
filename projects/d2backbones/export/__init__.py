"""Export of LazyConfig detectors to TorchScript and ONNX (``tools/export_model.py``).

- :mod:`.tracing`: what is exported (inference on one preprocessed image, up to the
  resize to the original image) and its trace through detectron2's ``TracingAdapter``;
- :mod:`.writer`: the files: ``model.ts`` / ``model.onnx``, ``sample_input.npy``, ``metadata.json``;
- :mod:`.runtime`: :func:`postprocess` and :class:`ExportedDetector`, which return what
  eager ``model(inputs)`` does;
- :mod:`.check`: exported-vs-eager differences, detections paired regardless of order.
"""
from .check import CHECK_TOLERANCES, check_export, compare_detections, within_tolerance
from .runtime import ExportedDetector, postprocess, raw_instances, read_metadata
from .tracing import check_exportable, output_fields, trace
from .writer import EXPORT_FORMATS, ONNX_OPSET, export_detector, export_from_config

__all__ = [
    "CHECK_TOLERANCES",
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "ExportedDetector",
    "check_export",
    "check_exportable",
    "compare_detections",
    "export_detector",
    "export_from_config",
    "output_fields",
    "postprocess",
    "raw_instances",
    "read_metadata",
    "trace",
    "within_tolerance",
]
