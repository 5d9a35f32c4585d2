"""Figures of a run: training curves and predictions drawn on images."""
from .curves import plot_training_curves
from .predictions import draw_predictions

__all__ = ["draw_predictions", "plot_training_curves"]
