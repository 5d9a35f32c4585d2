"""Detector parts shared by several backbone families (ROI heads, builders)."""
from .cascade_roi_heads import MMDetCascadeROIHeads
from .checkpointed_heads import (
    CheckpointedFastRCNNConvFCHead,
    CheckpointedMaskRCNNConvUpsampleHead,
    CheckpointedRPNHead,
)
from .chunked_roi_heads import ChunkedStandardROIHeads

__all__ = [
    "CheckpointedFastRCNNConvFCHead",
    "CheckpointedMaskRCNNConvUpsampleHead",
    "CheckpointedRPNHead",
    "ChunkedStandardROIHeads",
    "MMDetCascadeROIHeads",
]
