"""Optimizer of the ViT-era recipes: AdamW, no weight decay on norm layers.

``params.model`` is set to the built model just before instantiation. Model
configs add the layer-wise lr decay (``params.lr_factor_func``) and parameter
overrides (``params.overrides``) that fit their backbone.
"""
import torch
from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        # lr_factor_func scales this base lr per parameter, so it must see the real one.
        base_lr="${..lr}",
        weight_decay_norm=0.0,
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
