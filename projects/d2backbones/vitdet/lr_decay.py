"""ViTDet's layer rule for layer-wise lr decay (0.7 for ViT-B in the paper's recipe)."""
from ..layers.lr_decay import layer_decay_factor

__all__ = ["vit_layer_id", "vit_lr_decay_rate"]


def vit_layer_id(name, num_layers):
    """Layer id of a detector parameter with a plain-ViT backbone.

    ``pos_embed`` and ``patch_embed`` are layer 0, ``blocks.i`` is layer i + 1 (its
    optional conv ``residual`` branch excepted), and every other parameter
    (pyramid, heads, residual branches) is num_layers + 1.
    """
    if not name.startswith("backbone"):
        return num_layers + 1
    if ".pos_embed" in name or ".patch_embed" in name:
        return 0
    if ".blocks." in name and ".residual." not in name:
        return int(name.split(".blocks.", 1)[1].split(".", 1)[0]) + 1
    return num_layers + 1


def vit_lr_decay_rate(name, lr_decay_rate=1.0, num_layers=12):
    """lr multiplier for a ViTDet parameter; same signature as detectron2's
    ``get_vit_lr_decay_rate`` so configs can switch by import."""
    return layer_decay_factor(vit_layer_id(name, num_layers), num_layers, lr_decay_rate)
