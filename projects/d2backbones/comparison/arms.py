"""Which detection config each family fine-tunes, and which pretraining feeds it.

The configs are the tiny CPU ones: ``configs/demo/<family>_tiny.py`` and their matched
``configs/Pretrain/*_tiny.py``. MIMDet fine-tunes the MAE encoder *and* decoder, so it
shares ViTDet's MAE run (its ConvStem cannot be MIM-pretrained); both arms are charged
that run's full compute.
"""
from dataclasses import dataclass

__all__ = ["ARMS", "Arm"]


@dataclass(frozen=True)
class Arm:
    """One family of the comparison.

    Attributes:
        family (str): "vitdet", "mimdet", "convnext" or "swin".
        detection_config (str): the LazyConfig fine-tuned (and trained from scratch).
        pretrain_config (str): the masked-image-modeling LazyConfig whose final
            checkpoint is the fine-tuning's ``train.init_checkpoint``.
        method (str): the pretraining method, for the table.
    """

    family: str
    detection_config: str
    pretrain_config: str
    method: str


ARMS = {
    arm.family: arm
    for arm in (
        Arm("vitdet", "configs/demo/vitdet_tiny.py", "configs/Pretrain/mae_vitdet_tiny.py", "MAE"),
        Arm("mimdet", "configs/demo/mimdet_tiny.py", "configs/Pretrain/mae_vitdet_tiny.py", "MAE"),
        Arm("convnext", "configs/demo/convnext_tiny.py", "configs/Pretrain/spark_convnext_tiny.py", "SparK"),
        Arm("swin", "configs/demo/swin_tiny.py", "configs/Pretrain/simmim_swin_tiny.py", "SimMIM"),
    )
}
