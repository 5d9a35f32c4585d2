"""d2backbones: ViT-era backbones as first-class Detectron2 detectors.

Importing the package fills detectron2's registries (``BACKBONE_REGISTRY``,
``META_ARCH_REGISTRY``, ``ROI_HEADS_REGISTRY``) and this project's checkpoint-format
registry, the way importing ``detectron2.modeling`` fills its own: every family
registers its builders in its ``build.py`` and its checkpoint formats in its
``convert.py``.
"""
from . import checkpoint, modeling

# The order is the detection order of formats within one priority band, and the
# default converter of a shared format (MAE) for a model of unknown family.
from . import vitdet  # isort: skip
from . import mimdet  # isort: skip
from . import convnext  # isort: skip
from . import swin  # isort: skip
# Pretraining models, after the families: their MAE converters are the defaults above.
from . import pretrain  # isort: skip
# The embedded datasets, as detectron2.data registers its builtin ones: nothing is generated here.
from .data.builtin import register_builtin_datasets  # isort: skip

register_builtin_datasets()

__version__ = "0.1.0"
