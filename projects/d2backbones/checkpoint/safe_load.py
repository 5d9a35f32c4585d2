"""Reading checkpoint files without running arbitrary code.

``.pth`` files go through ``torch.load(weights_only=True)``, which only rebuilds
tensors, containers and plain values, plus the few extra types that released
checkpoints carry (numpy arrays and scalars, ``argparse.Namespace`` in MAE and
MIMDet files). ``.pkl`` files (detectron2's model zoo) are read by detectron2's
own loader, with its ``pickle.load`` restricted to numpy's array types.

Anything else needs full unpickling, which can run code from the file: it is
refused unless the caller opts in (``allow_unsafe=True``, the
``?allow_unsafe=True`` checkpoint query, ``--allow-unsafe`` on the tools).
"""
import argparse
import io
import os
import pickle
import zipfile
from unittest import mock

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint import detection_checkpoint

__all__ = ["CheckpointError", "CorruptCheckpointError", "UnsafeCheckpointError", "read_checkpoint_file"]

UNSAFE_OPT_IN = "allow_unsafe=True (or --allow-unsafe on the command line)"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason and the fix."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, corrupt, or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs full unpickling (arbitrary code) to be read."""


def _numpy_globals():
    """Types numpy pickles its arrays and scalars with (numpy 1.x and 2.x names)."""
    dtype_classes = [type(np.dtype(name)) for name in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "?")]
    return [np.core.multiarray._reconstruct, np.core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


# Non-tensor types found in released checkpoints of the supported families.
SAFE_TORCH_GLOBALS = [argparse.Namespace, *_numpy_globals()]

# (module, name) pairs a detectron2 zoo .pkl may reference: numpy arrays only.
_SAFE_PICKLE_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_PICKLE_NAMES:
            return super().find_class(module.replace("numpy._core", "numpy.core"), name)
        raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name}")


class _RestrictedPickle:
    """Stands in for the ``pickle`` module inside detectron2's ``.pkl`` reader."""

    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return _NumpyOnlyUnpickler(file, **kwargs).load()


def _describe(path):
    size = os.path.getsize(path)
    return f"{path} ({size} bytes)"


def _refuse_unsafe(path, error):
    detail = str(error).strip().splitlines()
    unsupported = next((line.strip() for line in detail if "GLOBAL" in line), detail[0] if detail else "")
    return UnsafeCheckpointError(
        f"checkpoint {path} needs full unpickling, which can run code stored in the file "
        f"({unsupported}). Load it only if you trust its source, with {UNSAFE_OPT_IN}."
    )


def _corrupt(path, error):
    # torch wraps the unpickler's own complaint in a long preamble; keep the complaint.
    text = str(error).split("Unpickler error:")[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[0].split(". ")[0].rstrip(".") if lines else "no detail"
    return CorruptCheckpointError(
        f"cannot read checkpoint {_describe(path)}: the file is truncated, corrupt or not a "
        f"checkpoint ({type(error).__name__}: {detail}). Delete it and download it again."
    )


def _is_unsafe_refusal(error):
    return isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error)


def _read_pkl(path, allow_unsafe):
    """detectron2's ``.pkl`` reader (zoo, Caffe2 and plain-dict layouts)."""
    reader = DetectionCheckpointer(torch.nn.Module())
    if allow_unsafe:
        return reader._load_file(path)
    with mock.patch.object(detection_checkpoint, "pickle", _RestrictedPickle):
        return reader._load_file(path)


def _read_pth(path, allow_unsafe):
    if allow_unsafe:
        return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals(SAFE_TORCH_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint_file(path, allow_unsafe=False):
    """The object stored in a checkpoint file, read without running code from it.

    Returns whatever the file holds (usually a dict with tensors or numpy arrays).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file needs full unpickling and ``allow_unsafe`` is False.
        CorruptCheckpointError: the file is truncated, corrupt or not a checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CorruptCheckpointError(f"cannot read checkpoint {path}: the file is empty. Delete it and download it again.")
    read = _read_pkl if path.endswith(".pkl") else _read_pth
    try:
        return read(path, allow_unsafe)
    except pickle.UnpicklingError as error:
        if _is_unsafe_refusal(error):
            raise _refuse_unsafe(path, error) from None
        raise _corrupt(path, error) from None
    except (EOFError, RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, ImportError, zipfile.BadZipFile, io.UnsupportedOperation, MemoryError, OverflowError) as error:
        raise _corrupt(path, error) from None
