"""Running an exported detector: the eager model's interface, from TorchScript or onnxruntime.

The exported graph takes one preprocessed image and returns plain tensors in the
input's pixels. :func:`postprocess` turns them into what eager ``model(inputs)``
returns for that image (boxes resized to ``height`` x ``width``, masks pasted), and
:class:`ExportedDetector` does both for a list of inputs.
"""
import json
import os

import numpy as np
import torch
import torchvision  # noqa: F401  (registers the roi_align / nms ops that TorchScript files call)
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..engine.errors import UsageError
from .tracing import quiet_jit

__all__ = ["METADATA_FILE", "ExportedDetector", "postprocess", "raw_instances", "read_metadata"]

METADATA_FILE = "metadata.json"


def read_metadata(directory):
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"{directory} holds no {METADATA_FILE}: pass a directory written by tools/export_model.py")
    with open(path) as f:
        return json.load(f)


def raw_instances(outputs, fields, input_size):
    """The exported outputs (tensors or arrays named ``fields``) as ``Instances`` of the
    ``input_size`` (h, w) input: what ``model.inference(..., do_postprocess=False)`` returns."""
    instances = Instances(tuple(int(v) for v in input_size))
    for name, value in zip(fields, outputs):
        value = torch.as_tensor(value)
        instances.set(name, Boxes(value) if name == "pred_boxes" else value)
    return instances


def postprocess(outputs, fields, input_size, height, width):
    """What eager ``model(inputs)`` returns for one image, from the exported outputs.

    Args:
        outputs: the exported graph's outputs (tensors or numpy arrays), in ``fields`` order.
        fields (list[str]): their names (``metadata.json``'s ``outputs``).
        input_size (tuple[int, int]): (h, w) of the image given to the graph.
        height, width (int): the original image's size, as in the eager input dict.

    Returns:
        dict: ``{"instances": Instances}`` with boxes in the original pixels and, for mask
        models, (N, height, width) bool masks: detectron2's ``detector_postprocess``.
    """
    return {"instances": detector_postprocess(raw_instances(outputs, fields, input_size), height, width)}


class ExportedDetector:
    """An exported detector called like the eager one.

    ``ExportedDetector(directory)([{"image": (3, H, W) tensor, "height": h, "width": w}])``
    returns ``[{"instances": Instances}]``, as ``model(inputs)`` in eval mode. The image is
    preprocessed as for the eager model (the config's test transforms, its colour order;
    see ``metadata.json``); one image per graph call.
    """

    def __init__(self, directory, export_format=None, session_options=None):
        """
        Args:
            directory: what ``tools/export_model.py`` wrote.
            export_format: "torchscript" or "onnx"; default: the only one there.
            session_options (onnxruntime.SessionOptions): for the ONNX session, e.g. its threads.
        """
        self.metadata = read_metadata(directory)
        files = self.metadata["files"]
        if export_format is None and len(files) == 1:
            export_format = next(iter(files))
        if export_format not in files:
            raise UsageError(f"{directory} holds {', '.join(files)}, not {export_format}: pass one of them")
        self.export_format = export_format
        self.fields = self.metadata["outputs"]
        self.max_side = self.metadata["input"]["max_side"]
        path = os.path.join(directory, files[export_format])
        if export_format == "torchscript":
            with quiet_jit():
                self._module = torch.jit.load(path, map_location="cpu")
        else:
            import onnxruntime

            self._session = onnxruntime.InferenceSession(path, session_options, providers=["CPUExecutionProvider"])

    @torch.no_grad()
    def run(self, image):
        """The graph's outputs for one (3, H, W) float32 image, as tensors in ``fields`` order."""
        if self.max_side and max(image.shape[-2:]) > self.max_side:
            raise ValueError(
                f"a {image.shape[-2]}x{image.shape[-1]} input is larger than the {self.max_side}-px square the model "
                f"pads to; resize it to fit in {self.max_side} x {self.max_side} first"
            )
        if self.export_format == "torchscript":
            return tuple(self._module(image))
        outputs = self._session.run(None, {"image": np.ascontiguousarray(image.numpy(), dtype=np.float32)})
        return tuple(torch.from_numpy(value) for value in outputs)

    def __call__(self, batched_inputs):
        results = []
        for item in batched_inputs:
            image = item["image"]
            input_size = tuple(image.shape[-2:])
            height, width = item.get("height", input_size[0]), item.get("width", input_size[1])
            results.append(postprocess(self.run(image), self.fields, input_size, height, width))
        return results
