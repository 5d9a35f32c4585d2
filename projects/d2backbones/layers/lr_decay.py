"""Layer-wise learning-rate decay, shared by every backbone family.

Each family only says which "layer id" a parameter belongs to; the decay itself,
``rate ** (num_layers + 1 - layer_id)``, is one function. Plug the result into
detectron2's ``get_default_optimizer_params(..., lr_factor_func=...)``.
"""
import re


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
