"""Plain ViT backbone of ViTDet (Li et al., "Exploring Plain Vision Transformer
Backbones for Object Detection", ECCV 2022).

Constructor arguments and state-dict keys match ``detectron2.modeling.ViT``, so
detectron2 ViTDet configs work by changing the import, and MAE ``.pth`` / ViTDet
model-zoo ``.pkl`` files load unchanged. What differs is how it runs: attention
never builds the N x N rel-pos tensor (blockwise on the CPU, folded into
``F.scaled_dot_product_attention`` on GPUs), and activation checkpointing uses
``torch.utils.checkpoint``.
"""
import torch
import torch.nn as nn
from detectron2.modeling import Backbone

from ..layers import Block, PatchEmbed, recompute_in_backward, resize_abs_pos_embed

__all__ = ["ViT"]


class ViT(Backbone):
    """Plain ViT with window attention, a few global blocks, and decomposed rel-pos.

    Input (N, in_chans, H, W) with H, W multiples of ``patch_size``; output
    ``{out_feature: (N, embed_dim, H / patch_size, W / patch_size)}``.
    """

    def __init__(
        self,
        img_size=1024,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.0,
        norm_layer=nn.LayerNorm,
        act_layer=nn.GELU,
        use_abs_pos=True,
        use_rel_pos=False,
        rel_pos_zero_init=True,
        window_size=0,
        window_block_indexes=(),
        residual_block_indexes=(),
        use_act_checkpoint=False,
        pretrain_img_size=224,
        pretrain_use_cls_token=True,
        out_feature="last_feat",
        rel_pos_mode="auto",
    ):
        """
        Args:
            img_size (int): training input size; sizes the global blocks' rel-pos tables.
            pretrain_img_size (int): input size of pretraining; ``pos_embed`` is kept at
                that grid (plus a cls slot if ``pretrain_use_cls_token``) so MAE and zoo
                checkpoints load as they are, and is resized in the forward pass.
            use_act_checkpoint (bool): recompute each block in the backward pass
                (less memory, about a third more compute) while training.
            rel_pos_mode (str): "auto", "explicit", "fold", "mask" or "blockwise"; see
                :class:`d2backbones.layers.Attention`.
            Others as in detectron2's ``ViT``.
        """
        super().__init__()
        self.patch_size = patch_size
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(
            kernel_size=(patch_size, patch_size),
            stride=(patch_size, patch_size),
            in_chans=in_chans,
            embed_dim=embed_dim,
        )
        if use_abs_pos:
            grid = pretrain_img_size // patch_size
            num_positions = grid * grid + int(pretrain_use_cls_token)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        else:
            self.pos_embed = None

        # On the CPU even under a meta default device, where .tolist() has no data to read.
        drop_path_rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        token_grid = (img_size // patch_size, img_size // patch_size)
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=drop_path_rates[i],
                norm_layer=norm_layer,
                act_layer=act_layer,
                use_rel_pos=use_rel_pos,
                rel_pos_zero_init=rel_pos_zero_init,
                window_size=window_size if i in window_block_indexes else 0,
                use_residual_block=i in residual_block_indexes,
                input_size=token_grid,
                rel_pos_mode=rel_pos_mode,
            )
            for i in range(depth)
        )

        self._out_feature_channels = {out_feature: embed_dim}
        self._out_feature_strides = {out_feature: patch_size}
        self._out_features = [out_feature]

        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_vit_weights)

    def forward(self, x):
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(
                f"ViT input of size {tuple(x.shape[-2:])} is not a multiple of patch_size="
                f"{self.patch_size}; pad it (the pyramid's padding_constraints do this in a detector)"
            )
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + resize_abs_pos_embed(self.pos_embed, self.pretrain_use_cls_token, x.shape[1:3])
        for block in self.blocks:
            x = recompute_in_backward(block, block, x) if self.use_act_checkpoint else block(x)
        return {self._out_features[0]: x.permute(0, 3, 1, 2)}


def _init_vit_weights(module):
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
