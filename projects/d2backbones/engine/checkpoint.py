"""Checkpoints that survive a kill: written atomically, verified before a resume.

detectron2's checkpointer writes ``model_XXXX.pth`` and ``last_checkpoint`` in
place, so a process killed mid-write leaves a truncated file under its final
name. :class:`AtomicCheckpointer` writes every file to ``NAME.tmp``, syncs it,
then renames it over ``NAME`` (atomic on POSIX); ``last_checkpoint`` is only
updated after the checkpoint it names is complete. On resume, a checkpoint that
fails its zip integrity check (a file truncated or damaged by other means) is
passed over for the newest complete one.
"""
import glob
import json
import logging
import os
import re
import zipfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["AtomicCheckpointer", "AtomicFile", "checkpoint_is_complete", "trim_metrics_after"]

logger = logging.getLogger("d2backbones")

TEMP_SUFFIX = ".tmp"
_PERIODIC_NAME = re.compile(r"model_(\d+)\.pth$")


def _fsync_directory(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """``open()`` on ``path + ".tmp"``; closing it without error renames it over ``path``
    (flushed and synced first), so a reader never sees half a file; an error removes it."""

    def __init__(self, path, mode):
        self.path, self.temp_path = path, path + TEMP_SUFFIX
        self.file = open(self.temp_path, mode)

    def __enter__(self):
        return self.file

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            self.file.close()
            os.remove(self.temp_path)
            return
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temp_path, self.path)
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))


class _AtomicWritePathManager:
    """The checkpointer's path manager, with writes to local paths made atomic."""

    def __init__(self, base):
        self._base = base

    def open(self, path, mode="r", **kwargs):
        if any(flag in mode for flag in "wx") and "://" not in path:
            return AtomicFile(path, mode)
        return self._base.open(path, mode, **kwargs)

    def __getattr__(self, name):
        return getattr(self._base, name)


def _tensors_in(loaded):
    """The tensors of a loaded checkpoint, in a fixed order."""
    if isinstance(loaded, torch.Tensor):
        yield loaded
    elif isinstance(loaded, dict):
        for value in loaded.values():
            yield from _tensors_in(value)
    elif isinstance(loaded, (list, tuple)):
        for value in loaded:
            yield from _tensors_in(value)


def _storage_bytes(tensor):
    return torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage())


def _same_tensors(a, b):
    """Whether two loads of one checkpoint hold the same tensor bytes (NaN compares
    equal). Everything else in them comes from the one CRC-checked ``data.pkl``."""
    a, b = list(_tensors_in(a)), list(_tensors_in(b))
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(_storage_bytes(x), _storage_bytes(y)) for x, y in zip(a, b)
    )


_DOS_DIRECTORY_BIT = 0x10  # torch.save writes no directories, so no member carries it


def checkpoint_is_complete(path):
    """Whether ``path`` is a whole checkpoint: a ``torch.save`` zip whose every member
    matches its CRC (a truncated file has no central directory), and that torch reads
    with those same bytes.

    zipfile and torch's zip reader trust different header fields. The MS-DOS directory
    bit of a member's external attributes, for one, means nothing to zipfile, which
    checks the CRC, while torch's reader then skips the member's bytes: a tensor, or
    the ``serialization_id`` every load reads, comes back as uninitialised memory, so
    two loads can differ or fail at random. A member marked so is refused. The file is
    also loaded the way a resume loads it and compared with a memory-mapped load,
    which reads each record where zipfile found (and checked) it."""
    if not os.path.isfile(path):
        return False
    try:
        if not zipfile.is_zipfile(path):
            # Legacy (non-zip) pickles and .pkl files cannot be checked; trust them.
            return not path.endswith(".pth")
        with zipfile.ZipFile(path) as archive:
            if any(member.external_attr & _DOS_DIRECTORY_BIT for member in archive.infolist()):
                return False
            if archive.testzip() is not None:
                return False
        as_resumed = torch.load(path, map_location="cpu", weights_only=True)
        return _same_tensors(as_resumed, torch.load(path, map_location="cpu", mmap=True, weights_only=True))
    except Exception:  # a damaged header can fail in any layer, each with its own error type
        return False


class AtomicCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with atomic writes and verified resumes."""

    def __init__(self, model, save_dir="", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.path_manager = _AtomicWritePathManager(self.path_manager)
        self._verified = {}  # path -> ((size, mtime), complete): a check reads the whole file

    def _is_complete(self, path):
        try:
            stat = os.stat(path)
        except OSError:
            return False
        signature = (stat.st_size, stat.st_mtime_ns)
        if self._verified.get(path, (None,))[0] != signature:
            self._verified[path] = (signature, checkpoint_is_complete(path))
        return self._verified[path][1]

    def _candidates(self):
        """Checkpoints a resume could use, newest first: ``model_final.pth``, then the
        periodic ones by iteration (the tagged one among them), then any other tagged file.

        The newest complete file wins even when ``last_checkpoint`` was not updated
        to name it (a kill between the two renames)."""
        periodic = [p for p in glob.glob(os.path.join(self.save_dir, "model_*.pth")) if _PERIODIC_NAME.search(p)]
        periodic.sort(key=lambda p: int(_PERIODIC_NAME.search(p).group(1)), reverse=True)
        tagged = super().get_checkpoint_file()
        candidates = [os.path.join(self.save_dir, "model_final.pth"), *periodic]
        return candidates + ([tagged] if tagged and tagged not in candidates else [])

    def get_checkpoint_file(self):
        """The newest complete checkpoint; a damaged one is logged and passed over."""
        for path in self._candidates():
            if self._is_complete(path):
                return path
            if os.path.exists(path):
                logger.warning("Checkpoint %s is incomplete or damaged: not resuming from it.", path)
        return ""

    def has_checkpoint(self):
        return bool(self.get_checkpoint_file())

    def remove_stale_temporaries(self):
        """Delete ``*.tmp`` files a killed run left in the output directory."""
        for path in glob.glob(os.path.join(self.save_dir, "*" + TEMP_SUFFIX)):
            logger.info("Removing %s, left by an interrupted write.", path)
            os.remove(path)


def trim_metrics_after(metrics_path, last_iteration):
    """Cut ``metrics.json`` at its first record after ``last_iteration`` (or its first
    torn line), so a resumed run appends to the history of its checkpoint.

    The file is truncated in place, in one call: detectron2's JSONWriter may already
    hold it open for appending.
    """
    if not os.path.isfile(metrics_path):
        return
    offset = 0
    with open(metrics_path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if not line.endswith(b"\n") or record.get("iteration", -1) > last_iteration:
                break
            offset += len(line)
    os.truncate(metrics_path, offset)
