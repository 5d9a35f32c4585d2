"""What a checkpoint load did, per module: matched, missing, unexpected and
shape-mismatched keys, as a compact table."""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

__all__ = ["LoadReport", "module_group"]

BACKBONE_PREFIX = "backbone."


def module_group(key, depth=2):
    """The module a key is grouped under: its first ``depth`` dotted parts
    (``backbone.net``, ``roi_heads.box_head``), or the key itself for top-level ones."""
    parts = key.split(".")
    return ".".join(parts[:depth]) if len(parts) > depth else ".".join(parts[:-1]) or key


@dataclass
class LoadReport:
    """Keys of one load, relative to the model's state dict.

    Attributes:
        source: the checkpoint string as given.
        checkpoint_format: detected (or forced) format name, None if unrecognised.
        matched: model keys that received a value.
        missing: model keys the checkpoint did not provide (shape mismatches excluded).
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint_shape, model_shape)`` of keys skipped for their shape.
        backbone_prefix: keys of the part a checkpoint must initialise (``backbone.`` of a
            detector; "" for a pretraining model, which is all backbone).
    """

    source: str
    checkpoint_format: Optional[str]
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    backbone_prefix: str = BACKBONE_PREFIX

    @property
    def backbone_matched(self):
        return [k for k in self.matched if k.startswith(self.backbone_prefix)]

    @property
    def backbone_mismatched(self):
        return [m for m in self.mismatched if m[0].startswith(self.backbone_prefix)]

    def rows(self):
        """``[(module, matched, missing, unexpected, mismatched)]`` sorted by module."""
        counts = defaultdict(lambda: [0, 0, 0, 0])
        for column, keys in enumerate(
            (self.matched, self.missing, self.unexpected, [m[0] for m in self.mismatched])
        ):
            for key in keys:
                counts[module_group(key)][column] += 1
        return [(group, *counts[group]) for group in sorted(counts)]

    def table(self):
        """The rows as a fixed-width text table with a total line, and the mismatched shapes."""
        header = ("module", "matched", "missing", "unexpected", "shape mismatch")
        rows = self.rows()
        totals = ("total", len(self.matched), len(self.missing), len(self.unexpected), len(self.mismatched))
        width = max(len(header[0]), *(len(r[0]) for r in rows)) if rows else len(header[0])
        lines = [f"{header[0]:<{width}}  " + "  ".join(f"{h:>{len(h)}}" for h in header[1:])]
        for row in [*rows, totals]:
            lines.append(f"{row[0]:<{width}}  " + "  ".join(f"{v:>{len(h)}}" for v, h in zip(row[1:], header[1:])))
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        for key, checkpoint_shape, model_shape in self.mismatched:
            lines.append(f"shape mismatch: {key}: checkpoint {tuple(checkpoint_shape)} vs model {tuple(model_shape)}")
        return "\n".join(lines)

    def summary(self):
        return (
            f"Loaded {self.source} ({self.checkpoint_format or 'unrecognised format'}): "
            f"{len(self.matched)} matched, {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} shape-mismatched keys"
        )

    def __str__(self):
        return self.summary() + "\n" + self.table()
