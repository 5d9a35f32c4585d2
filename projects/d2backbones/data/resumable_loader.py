"""A training loader whose batch ``k`` is a pure function of ``(seed, k)``, that skips bad images.

detectron2's ``build_detection_train_loader`` draws its shuffle from a sampler
that always starts at the beginning, augments with whatever random state each
worker happens to have, and groups by aspect ratio with buffers that live in
the workers. A run resumed at iteration ``k`` therefore sees different batches
than the run it replaces. Here:

* the index stream is one shuffle per epoch, seeded by ``(seed, epoch)``; with
  repeat factors (LVIS's repeat-factor sampling) the epoch's repeats are drawn
  from the same generator (:func:`epoch_indices`);
* aspect-ratio grouping works on indices (``width`` / ``height`` of the dicts),
  so the grouping is replayed in microseconds instead of loading images;
* the random state of every sample's augmentation is seeded by ``(seed, position)``.

So batch ``k`` is the same whether the run started at 0 or resumed at ``k``, with
any number of workers. An image that cannot be read (:class:`BadImageError`) is
replaced by another sample, drawn deterministically; the skip is reported to the
main process with the batch, warned about once per file, and counted.
"""
import itertools
import logging
import random

import numpy as np
import torch
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .robust_images import BadImageError

__all__ = ["BadDataReport", "ResumableTrainLoader", "build_resumable_train_loader", "epoch_indices"]

logger = logging.getLogger(__name__)

# Substitutes tried for one bad sample before the data is declared unusable.
MAX_SUBSTITUTES = 20


def derive_seed(*numbers):
    """A 32-bit seed from any integers (``np.random.SeedSequence`` mixing)."""
    return int(np.random.SeedSequence([int(n) % 2**63 for n in numbers]).generate_state(1)[0])


def epoch_indices(size, seed, epoch, repeat_factors=None, shuffle=True):
    """The dataset indices of one epoch, a pure function of ``(seed, epoch)``.

    Without ``repeat_factors`` every index appears once. With them (float array of
    shape ``(size,)``), index ``i`` appears ``floor(r_i)`` times and once more with
    probability ``r_i - floor(r_i)``: the stochastic rounding of detectron2's
    ``RepeatFactorTrainingSampler``, so ``r_i`` is met in expectation. Returns an int
    array of shape ``(epoch length,)``, shuffled unless ``shuffle=False``.
    """
    rng = np.random.default_rng(derive_seed(seed, epoch))
    if repeat_factors is None:
        return rng.permutation(size) if shuffle else np.arange(size)
    whole = np.floor(repeat_factors)
    counts = whole + (rng.random(size) < repeat_factors - whole)
    indices = np.repeat(np.arange(size), counts.astype(np.int64))
    return rng.permutation(indices) if shuffle else indices


def _checked_repeat_factors(repeat_factors, size):
    """``repeat_factors`` as a float64 array of shape ``(size,)``, or None; one-line errors."""
    if repeat_factors is None:
        return None
    factors = np.asarray(torch.as_tensor(repeat_factors, dtype=torch.float64))
    if factors.shape != (size,):
        raise ValueError(f"repeat_factors has shape {factors.shape} for {size} images; give one factor per image")
    if not np.isfinite(factors).all() or (factors < 0).any() or factors.sum() == 0:
        raise ValueError("repeat_factors must be finite, non-negative and not all zero; check how they are computed")
    return factors


class _SeededGlobalRNG:
    """Seeds python, numpy and torch's global generators, restoring them on exit:
    augmentations draw from those, and the training step must not feel it."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        self.saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)

    def __exit__(self, *exc_info):
        random.setstate(self.saved[0])
        np.random.set_state(self.saved[1])
        torch.set_rng_state(self.saved[2])


class _IndexBatches:
    """Batches of ``(position, dataset index)`` of one rank, from batch 0 onwards.

    Position ``p`` of rank ``r`` among ``W`` is global stream position ``p * W + r``
    (detectron2's ``TrainingSampler`` sharding), so ranks never share a sample.
    """

    def __init__(self, aspect_is_wide, batch_size, seed, shuffle, rank, world_size, repeat_factors=None):
        self.aspect_is_wide = aspect_is_wide  # bool per image, or None: no grouping
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.repeat_factors = repeat_factors

    def _stream(self, size):
        for epoch in itertools.count():
            yield from (int(i) for i in epoch_indices(size, self.seed, epoch, self.repeat_factors, self.shuffle))

    def __call__(self, size):
        stream = itertools.islice(self._stream(size), self.rank, None, self.world_size)
        positions = (p * self.world_size + self.rank for p in itertools.count())
        if self.aspect_is_wide is None:
            pairs = zip(positions, stream)
            while True:
                yield list(itertools.islice(pairs, self.batch_size))
        buckets = ([], [])
        for position, index in zip(positions, stream):
            bucket = buckets[int(self.aspect_is_wide[index])]
            bucket.append((position, index))
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()


class _MappedBatches(IterableDataset):
    """Batches ``start, start + 1, ...`` mapped; worker ``w`` of ``n`` makes every n-th,
    and torch's loader interleaves workers in order, so the order is kept."""

    def __init__(self, dataset, mapper, index_batches, start, seed):
        self.dataset, self.mapper = dataset, mapper
        self.index_batches, self.start, self.seed = index_batches, start, seed

    def _map(self, position, index):
        """The mapped sample, or a substitute; returns (sample, [(file, reason), ...] skipped)."""
        skipped = []
        for attempt in range(MAX_SUBSTITUTES + 1):
            record = self.dataset[index]
            try:
                with _SeededGlobalRNG(derive_seed(self.seed, position, attempt)):
                    mapped = self.mapper(record)
            except BadImageError as error:
                skipped.append((error.path, error.reason))
                mapped = None
            if mapped is not None:
                return mapped, skipped
            if not skipped or skipped[-1][0] != record.get("file_name"):
                skipped.append((record.get("file_name", f"dataset index {index}"), "the mapper returned None"))
            index = int(np.random.default_rng(derive_seed(self.seed, position, attempt, 1)).integers(len(self.dataset)))
        files = ", ".join(sorted({path for path, _ in skipped}))
        raise RuntimeError(f"{MAX_SUBSTITUTES + 1} images in a row could not be read ({files}); check the dataset")

    def __iter__(self):
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        batches = itertools.islice(self.index_batches(len(self.dataset)), self.start + worker_id, None, num_workers)
        for batch in batches:
            mapped, skipped = [], []
            for position, index in batch:
                sample, sample_skipped = self._map(position, index)
                mapped.append(sample)
                skipped.extend(sample_skipped)
            yield mapped, skipped


def _keep_as_is(batch):
    return batch


class BadDataReport:
    """Images skipped during training: warned about once per file, counted every time."""

    def __init__(self):
        self.skips = 0
        self.reasons = {}

    def record(self, skipped):
        for path, reason in skipped:
            self.skips += 1
            if path not in self.reasons:
                self.reasons[path] = reason
                logger.warning("Skipped unreadable image %s (%s)", path, reason)

    def summary(self):
        """One line: how many samples were skipped, and which files."""
        if not self.skips:
            return "no image was skipped"
        files = "; ".join(f"{path} ({reason})" for path, reason in sorted(self.reasons.items()))
        return f"skipped {self.skips} samples from {len(self.reasons)} unreadable image files: {files}"


class ResumableTrainLoader:
    """Iterable of training batches (lists of mapped dicts) starting at batch ``start_iter``.

    ``seed`` and ``start_iter`` may be changed until iteration starts (after a resume).
    With ``strict=True`` the first unreadable image raises :class:`BadImageError`.
    ``repeat_factors`` (one float per image, e.g. from detectron2's
    ``RepeatFactorTrainingSampler.repeat_factors_from_category_frequency``) turns on
    repeat-factor sampling, drawn per epoch by :func:`epoch_indices`.
    """

    def __init__(
        self,
        dataset,
        mapper,
        batch_size,
        num_workers=0,
        aspect_ratio_grouping=True,
        seed=0,
        strict=False,
        repeat_factors=None,
    ):
        self.dataset = dataset if isinstance(dataset, DatasetFromList) else DatasetFromList(dataset, copy=False)
        self.repeat_factors = _checked_repeat_factors(repeat_factors, len(self.dataset))
        self.mapper, self.batch_size, self.num_workers = mapper, batch_size, num_workers
        self.aspect_is_wide = None
        if aspect_ratio_grouping:
            self.aspect_is_wide = np.array([d["width"] > d["height"] for d in self.dataset], dtype=bool)
        self.seed, self.start_iter, self.strict = seed, 0, strict
        self.report = BadDataReport()

    def __iter__(self):
        index_batches = _IndexBatches(
            self.aspect_is_wide,
            self.batch_size,
            self.seed,
            True,
            comm.get_rank(),
            comm.get_world_size(),
            self.repeat_factors,
        )
        batches = _MappedBatches(self.dataset, self.mapper, index_batches, self.start_iter, self.seed)
        # batch_size=None: the dataset yields whole batches. An explicit generator keeps
        # the loader from drawing its base seed from the training step's torch RNG.
        loader = DataLoader(
            batches, batch_size=None, num_workers=self.num_workers, collate_fn=_keep_as_is, generator=torch.Generator()
        )
        for batch, skipped in loader:
            if skipped and self.strict:
                path, reason = skipped[0]
                raise BadImageError(path, f"{reason} (--strict-data / train.strict_data=True: bad images are errors)")
            self.report.record(skipped)
            yield batch


def build_resumable_train_loader(
    dataset,
    *,
    mapper,
    total_batch_size,
    num_workers=0,
    aspect_ratio_grouping=True,
    seed=0,
    strict=False,
    repeat_factors=None,
):
    """:class:`ResumableTrainLoader` with ``build_detection_train_loader``'s arguments.

    ``total_batch_size`` is split evenly over the ranks; ``repeat_factors`` stand for
    a ``RepeatFactorTrainingSampler`` of those factors.
    """
    world_size = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size:
        raise ValueError(f"total_batch_size={total_batch_size} must be a positive multiple of the {world_size} processes")
    return ResumableTrainLoader(
        dataset, mapper, total_batch_size // world_size, num_workers, aspect_ratio_grouping, seed, strict, repeat_factors
    )
