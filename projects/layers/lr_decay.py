"""Layer-wise learning-rate decay, shared by every backbone family.

Each family only says which "layer id" a parameter belongs to; the decay itself,
``rate ** (num_layers + 1 - layer_id)``, is one function. Plug the result into
detectron2's ``get_default_optimizer_params(..., lr_factor_func=...)``.
"""


def layer_decay_factor(layer_id, num_layers, rate):
    """lr multiplier of a parameter at ``layer_id`` in a 0..num_layers+1 stack.

    Layer 0 is the input embedding, layers 1..num_layers the blocks, and
    num_layers + 1 everything above the backbone (factor 1).
    """
    return rate ** (num_layers + 1 - layer_id)


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
