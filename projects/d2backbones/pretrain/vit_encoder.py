"""MAE's ViT encoder, the parts shared by the pretraining models that keep its names.

MAE (:class:`~.mae.MaskedAutoencoderViT`) and the mask-token ViT of MaskFeat and SimMIM
(:class:`~.masked_vit.MaskTokenViT`) build the same encoder under the same names
(``patch_embed.proj``, ``cls_token``, ``pos_embed`` with a cls slot, ``blocks.N.*``,
``norm``), initialise it the same way and feed it the same cls token; they differ in
which tokens reach the blocks. Those parts are written once here.
"""
import torch
import torch.nn as nn

from ..layers import Block, PatchEmbed, mae_weight_init, sincos_pos_embed_2d

__all__ = ["check_patch_grid", "init_mae_encoder", "mae_encoder_parts", "prepend_cls_token"]


def mae_encoder_parts(img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, norm_layer,
                      drop_path_rate=0.0):
    """The modules of MAE's encoder, in MAE's order: (patch_embed, cls_token, pos_embed, blocks, norm).

    ``pos_embed`` (1, 1 + L, embed_dim) is the fixed sine-cosine position of the
    ``img_size / patch_size`` grid with a cls slot, a parameter without gradient (as MAE
    keeps it, so it is in the state dict). Drop path rises linearly from 0 to
    ``drop_path_rate`` over the blocks.
    """
    if img_size % patch_size:
        raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
    patch_embed = PatchEmbed((patch_size, patch_size), (patch_size, patch_size), in_chans=in_chans,
                             embed_dim=embed_dim)
    cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
    pos_embed = nn.Parameter(sincos_pos_embed_2d(embed_dim, img_size // patch_size), requires_grad=False)
    blocks = nn.ModuleList(
        Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=rate, norm_layer=norm_layer)
        for rate in torch.linspace(0, drop_path_rate, depth).tolist()
    )
    return patch_embed, cls_token, pos_embed, blocks, norm_layer(embed_dim)


def init_mae_encoder(patch_embed, tokens, modules):
    """MAE's init: the patch conv as a linear layer over its flattened kernel (xavier), each
    learned token N(0, 0.02), then :func:`~d2backbones.layers.mae_weight_init` over ``modules``,
    in this order (so a model's random draws do not depend on how it was written)."""
    weight = patch_embed.proj.weight
    nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
    for token in tokens:
        nn.init.normal_(token, std=0.02)
    for module in modules:
        module.apply(mae_weight_init)


def check_patch_grid(grid, fixed_grid, patch_size, model_name):
    """Refuse an input whose (rows, cols) patch grid is not the ``fixed_grid`` side the
    position embedding was built for."""
    if tuple(grid) != (fixed_grid, fixed_grid):
        size = fixed_grid * patch_size
        raise ValueError(f"{model_name} got a {grid[0]}x{grid[1]} patch grid but pos_embed is fixed at "
                         f"{fixed_grid}x{fixed_grid}: feed {size}x{size} crops or set img_size")


def prepend_cls_token(tokens, cls_token, pos_embed):
    """(B, N, C) tokens -> (B, 1 + N, C): the cls token, with its position (``pos_embed``'s
    first slot), first."""
    cls = (cls_token + pos_embed[:, :1]).to(tokens.dtype).expand(tokens.shape[0], -1, -1)
    return torch.cat([cls, tokens], dim=1)
