"""MAE checkpoints into :class:`~.mae.MaskedAutoencoderViT`, to continue pretraining.

Our names are MAE's, so the released files (``mae_pretrain_vit_*_full.pth``) and
this model's own checkpoints load as they are, after removing the ``module.`` /
``encoder.`` wrappers some releases add. An encoder-only file leaves the decoder
at its init (the load table shows it as missing).
"""
from ..checkpoint import register_converter, register_family
from ..checkpoint.shared_formats import mae_keys

__all__ = ["convert_mae_for_pretraining"]


def convert_mae_for_pretraining(state_dict, model=None):
    """MAE keys, unwrapped; the model's names are the same."""
    return mae_keys(state_dict)


register_family("mae_pretraining", ("d2backbones.pretrain.mae",))
register_converter("mae_full", "mae_pretraining", convert_mae_for_pretraining)
register_converter("mae", "mae_pretraining", convert_mae_for_pretraining)
