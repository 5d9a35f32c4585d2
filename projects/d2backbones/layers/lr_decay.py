"""Layer-wise learning-rate decay, shared by every backbone family.

Each family only says which "layer id" a parameter belongs to, in its own
``lr_decay.py``; the decay itself, ``rate ** (num_layers + 1 - layer_id)``, is this
one function. Plug a family's ``*_lr_decay_rate`` into detectron2's
``get_default_optimizer_params(..., lr_factor_func=...)``.
"""

__all__ = ["layer_decay_factor"]


def layer_decay_factor(layer_id, num_layers, rate):
    """lr multiplier of a parameter at ``layer_id`` in a 0..num_layers+1 stack.

    Layer 0 is the input embedding, layers 1..num_layers the blocks, and
    num_layers + 1 everything above the backbone (factor 1).
    """
    return rate ** (num_layers + 1 - layer_id)
