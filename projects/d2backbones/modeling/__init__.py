"""Detector parts shared by several backbone families (ROI heads, builders)."""
from .cascade_roi_heads import MMDetCascadeROIHeads
from .chunked_roi_heads import ChunkedStandardROIHeads

__all__ = ["ChunkedStandardROIHeads", "MMDetCascadeROIHeads"]
