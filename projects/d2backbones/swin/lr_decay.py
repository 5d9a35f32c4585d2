"""Swin's layer rule for layer-wise lr decay: the ViT rule over all stages' blocks in order."""
import re

from ..layers.lr_decay import layer_decay_factor

__all__ = ["swin_layer_id", "swin_lr_decay_rate"]


def swin_layer_id(name, depths):
    """Layer id of a detector parameter with a Swin backbone: the ViT rule over the
    blocks of all stages counted in order.

    The patch embedding is layer 0, block j of stage i is ``sum(depths[:i]) + j + 1``,
    the patch merging that opens stage i shares the id of the block before it, and
    everything else (output norms, pyramid, heads) is ``sum(depths) + 1``.
    """
    num_layers = sum(depths)
    if not name.startswith("backbone"):
        return num_layers + 1
    if ".patch_embed." in name:
        return 0
    match = re.search(r"\.layers\.(\d+)\.(downsample|blocks\.(\d+))\.", name)
    if match is None:
        return num_layers + 1
    stage, block = int(match.group(1)), match.group(3)
    first_of_stage = sum(depths[:stage])
    return first_of_stage + 1 + int(block) if block is not None else first_of_stage


def swin_lr_decay_rate(name, lr_decay_rate=1.0, depths=(2, 2, 6, 2)):
    """lr multiplier for a parameter of a detector with a Swin backbone."""
    return layer_decay_factor(swin_layer_id(name, depths), sum(depths), lr_decay_rate)
