"""Figures and tables of a run: training curves, predictions drawn on images, markdown tables."""
from .curves import plot_training_curves
from .markdown import markdown_table
from .predictions import draw_predictions

__all__ = ["draw_predictions", "markdown_table", "plot_training_curves"]
