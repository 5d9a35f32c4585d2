"""d2backbones: ViT-era backbones as first-class Detectron2 detectors."""

__version__ = "0.1.0"
