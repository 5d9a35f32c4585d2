"""Reading checkpoint files without running arbitrary code.

``.pth`` files go through ``torch.load(weights_only=True)``, which only rebuilds
tensors, containers and plain values, plus the few extra types that released
checkpoints carry (numpy arrays and scalars, ``argparse.Namespace`` in MAE and
MIMDet files). ``.pkl`` files (detectron2's model zoo) are unpickled by an
unpickler that only knows numpy's array types, then laid out the way
detectron2's checkpointer lays them out (:func:`pkl_checkpoint_layout`).

Anything else needs full unpickling, which can run code from the file: it is
refused, naming the globals the file references, unless the caller opts in
(``allow_unsafe=True``, or ``?allow_unsafe=True`` after the checkpoint string).
"""
import argparse
import io
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "pkl_checkpoint_layout",
    "read_checkpoint_file",
]

UNSAFE_OPT_IN = "append ?allow_unsafe=True to the checkpoint string (or pass allow_unsafe=True)"
# Enough for the pickles at the head of a legacy (non-zip) torch file; its storages follow them.
_SCAN_BYTES = 64 << 20


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason and the fix."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, corrupt, or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs full unpickling (arbitrary code) to be read."""


class _RefusedGlobals(pickle.UnpicklingError):
    """The restricted reader met globals it does not rebuild; ``names`` are ``module.name``."""

    def __init__(self, names):
        super().__init__(f"unsupported globals: {', '.join(names)}")
        self.names = names


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
    # How a protocol-2 pickle written by Python 3 stores bytes (array data): text to bytes.
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_PICKLE_NAMES:
            return super().find_class(module.replace("numpy._core", "numpy.core"), name)
        raise _RefusedGlobals([f"{module}.{name}"])


# ---- naming what torch's weights-only load refused ------------------------------

_STRING_OPCODES = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"})
_PUT_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPCODES = frozenset({"GET", "BINGET", "LONG_BINGET"})
# Modules of the globals torch's weights-only unpickler allows by default (tensor and
# storage rebuilders, dtypes, OrderedDict). Only used to name what torch refused in a
# file its own static check cannot read; what loads is always torch's decision.
_TORCH_DEFAULT_MODULES = ("torch", "torch._utils", "torch._tensor", "collections")
_ALLOWED_NAMES = {f"{module}.{name}" for module, name in _SAFE_PICKLE_NAMES} | {
    f"{g.__module__}.{g.__name__}" for g in SAFE_TORCH_GLOBALS
}


def _globals_in_pickle(stream, found):
    """Append to ``found`` the ``module.name`` of every global one pickle in ``stream``
    imports, read from its opcodes: nothing is unpickled. ``STACK_GLOBAL`` takes the two
    values pushed just before it (directly or from the memo); a pickle built to hide them
    is still refused by torch, only not named here."""
    memo, pushed = {}, [None, None]
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            found.append(arg.replace(" ", "."))
        elif name == "STACK_GLOBAL" and all(isinstance(s, str) for s in pushed):
            found.append(".".join(pushed))
        if name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif name in _PUT_OPCODES:
            memo[arg] = pushed[-1]
        elif name in _GET_OPCODES:
            pushed = [pushed[-1], memo.get(arg)]
        elif name in _STRING_OPCODES:
            pushed = [pushed[-1], arg]
        elif opcode.stack_after:
            pushed = [pushed[-1], None]


def _globals_in_pickles(data, count):
    """Globals of the first ``count`` pickles stored back to back in ``data`` (bytes),
    up to where they stop being readable."""
    stream, found = io.BytesIO(data), []
    for _ in range(count):
        try:
            _globals_in_pickle(stream, found)
        except (ValueError, EOFError, struct.error, UnicodeDecodeError, OverflowError):
            break  # the end of what is pickle: storage bytes, or damage
    return found


def _not_allowed(names):
    names = {n for n in names if all(part.isidentifier() for part in n.split("."))}
    return sorted(n for n in names if n.rsplit(".", 1)[0] not in _TORCH_DEFAULT_MODULES and n not in _ALLOWED_NAMES)


def _refused_globals(path):
    """The globals of a ``.pth`` that weights-only loading does not rebuild, [] if none
    can be found (then the file is damaged, not unsafe)."""
    if zipfile.is_zipfile(path):
        try:
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError):
            pass  # torch's scanner reads protocol-2 opcodes only; read the pickle ourselves
        try:
            with zipfile.ZipFile(path) as archive:
                member = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
                return _not_allowed(_globals_in_pickles(archive.read(member), count=1))
        except (StopIteration, zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
            return []
    with open(path, "rb") as f:
        # A legacy torch.save file is four pickles (magic, protocol, system info, data).
        return _not_allowed(_globals_in_pickles(f.read(_SCAN_BYTES), count=4))


# ---- readers ---------------------------------------------------------------------


def pkl_checkpoint_layout(data):
    """A ``.pkl`` file's unpickled object in the layout detectron2's checkpointer gives it.

    - detectron2 zoo files (``model`` and ``__author__`` keys) are kept as they are;
    - Caffe2 / Detectron1 files keep their ``blobs`` (detection models) or the whole
      dict (ImageNet models), without the solver's ``*_momentum`` entries, and are
      marked for name matching: ``{"model": ..., "__author__": "Caffe2", "matching_heuristics": True}``.
    """
    if not isinstance(data, dict):
        raise TypeError(f"the file holds a {type(data).__name__}, not a dict of weights")
    if "model" in data and "__author__" in data:
        return data
    weights = data["blobs"] if "blobs" in data else data
    weights = {k: v for k, v in weights.items() if not k.endswith("_momentum")}
    return {"model": weights, "__author__": "Caffe2", "matching_heuristics": True}


def _read_pkl(path, allow_unsafe):
    with open(path, "rb") as f:
        # latin1: Caffe2 files were pickled by Python 2, as detectron2 reads them.
        unpickler = pickle.Unpickler(f, encoding="latin1") if allow_unsafe else _NumpyOnlyUnpickler(f, encoding="latin1")
        return pkl_checkpoint_layout(unpickler.load())


def _read_pth(path, allow_unsafe):
    if allow_unsafe:
        return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals(SAFE_TORCH_GLOBALS):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # torch refuses in one exception type for unsafe and for damaged files; the
            # globals the file names tell them apart.
            refused = _refused_globals(path)
            if refused:
                raise _RefusedGlobals(refused) from None
            raise


def _describe(path):
    size = os.path.getsize(path)
    return f"{path} ({size} bytes)"


def _refuse_unsafe(path, names):
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return UnsafeCheckpointError(
        f"checkpoint {path} is unsafe: reading it needs full unpickling, which would run code it "
        f"references ({shown}). Load it only if you trust its source: {UNSAFE_OPT_IN}."
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


def read_checkpoint_file(path, allow_unsafe=False):
    """The object stored in a checkpoint file, read without running code from it.

    Returns whatever the file holds (usually a dict with tensors or numpy arrays);
    ``.pkl`` files in detectron2's layout (see :func:`pkl_checkpoint_layout`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file needs full unpickling and ``allow_unsafe`` is False.
        CorruptCheckpointError: the file is truncated, corrupt or not a checkpoint.
        CheckpointError: the file cannot be opened (e.g. no permission).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CorruptCheckpointError(f"cannot read checkpoint {path}: the file is empty. Delete it and download it again.")
    read = _read_pkl if path.endswith(".pkl") else _read_pth
    try:
        return read(path, allow_unsafe)
    except _RefusedGlobals as error:
        raise _refuse_unsafe(path, error.names) from None
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, ImportError, zipfile.BadZipFile, io.UnsupportedOperation, MemoryError, OverflowError) as error:
        raise _corrupt(path, error) from None
    except OSError as error:
        raise CheckpointError(f"cannot open checkpoint {path}: {error.strerror or error}") from None
