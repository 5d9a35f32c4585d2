"""MAE's weight initialisation of transformer layers, shared by MAE pretraining and MIMDet."""
import torch.nn as nn

__all__ = ["mae_weight_init"]


def mae_weight_init(module):
    """MAE's init, for ``model.apply``: xavier-uniform linear layers with zero bias,
    unit LayerNorms; other modules are left as they are."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
