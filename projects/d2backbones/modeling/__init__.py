"""Detector parts shared by several backbone families (ROI heads, builders)."""
from .cascade_roi_heads import MMDetCascadeROIHeads

__all__ = ["MMDetCascadeROIHeads"]
