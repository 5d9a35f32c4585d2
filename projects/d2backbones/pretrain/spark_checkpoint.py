"""SparK checkpoints (the ``spark`` format of :mod:`d2backbones.checkpoint.shared_formats`)
into :class:`~.spark.SparK`, to continue pretraining.

The keys are the model's names and load as they are. The families whose network can
be a SparK encoder register their own converter for the format, taking its encoder
into their detectors (ConvNeXt's is in ``d2backbones/convnext/convert.py``).
"""
from ..checkpoint import register_converter, register_family
from ..checkpoint.shared_formats import SPARK_FORMAT

__all__ = ["convert_spark_for_pretraining"]


def convert_spark_for_pretraining(state_dict, model=None):
    """SparK keys are the model's names: returned as they are (a new dict)."""
    return dict(state_dict)


register_family("spark_pretraining", ("d2backbones.pretrain.spark",))
register_converter(SPARK_FORMAT, "spark_pretraining", convert_spark_for_pretraining)
