"""ConvNeXt's layer rule for layer-wise lr decay, as in the official ConvNeXt detection code."""
import re

from ..layers.lr_decay import layer_decay_factor

__all__ = ["convnext_layer_id", "convnext_lr_decay_rate"]


def convnext_layer_id(name, num_layers=12):
    """Layer id of a detector parameter with a ConvNeXt backbone, as in the official
    ConvNeXt detection code ("layer_wise" decay).

    The stem is layer 0; stage 0 is layer 1; stage 1 (and its downsampling) layer 2;
    stage 2 has one id per three blocks from 3 on (its downsampling is 3); stage 3
    (with its downsampling) is ``num_layers``; everything else num_layers + 1.
    The official configs use num_layers 6 for ConvNeXt-T (9 blocks in stage 2) and
    12 for the 27-block stage 2 of S/B/L.
    """
    if not name.startswith("backbone"):
        return num_layers + 1
    if ".stem." in name:
        return 0
    match = re.search(r"\.stages\.(\d+)\.(downsample|blocks\.(\d+))\.", name)
    if match is None:
        return num_layers + 1
    stage, block = int(match.group(1)), match.group(3)
    if stage == 3:
        return num_layers
    if stage == 2 and block is not None:
        return 3 + int(block) // 3
    return stage + 1


def convnext_lr_decay_rate(name, lr_decay_rate=1.0, num_layers=12):
    """lr multiplier for a parameter of a detector with a ConvNeXt backbone."""
    return layer_decay_factor(convnext_layer_id(name, num_layers), num_layers, lr_decay_rate)
