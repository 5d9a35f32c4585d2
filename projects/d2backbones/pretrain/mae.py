"""MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022)
on this project's ViT blocks.

The encoder embeds patches, adds the fixed sine-cosine position, drops a random
``mask_ratio`` of the tokens per image and runs only the visible ones (with a cls
token) through its blocks. The light decoder puts a learned ``mask_token`` at every
removed position, restores the grid order, and predicts each patch's target; the
loss is counted on the removed patches only.

Parameter names are those of facebookresearch/mae ``models_mae.py``
(``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.N.*``, ``norm``,
``mask_token``, ``decoder_embed``, ``decoder_pos_embed``, ``decoder_blocks.N.*``,
``decoder_norm``, ``decoder_pred``), so a released ``mae_pretrain_vit_*_full.pth``
continues pretraining here, and what this model writes loads into the ViTDet
(encoder) and MIMDet (encoder and decoder) detectors as an MAE checkpoint.
"""
from functools import partial

import torch
import torch.nn as nn

from ..layers import Block, random_masking, run_token_blocks, sincos_pos_embed_2d, unshuffle_tokens
from .base import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, ImagePretrainer
from .loss import masked_patch_mse
from .targets import build_target
from .vit_encoder import check_patch_grid, init_mae_encoder, mae_encoder_parts, prepend_cls_token

__all__ = ["MaskedAutoencoderViT"]


class MaskedAutoencoderViT(ImagePretrainer):
    """MAE with a ViT encoder and a transformer decoder.

    ==================  ===========================  ==========================
    part                ViT-B (published)            shape
    ==================  ===========================  ==========================
    patch_embed.proj    16 x 16 conv, 3 -> 768       tokens (B, L, 768)
    pos_embed           fixed sin-cos, cls slot      (1, 1 + L, 768)
    blocks              12, 12 heads, global attn    visible tokens + cls only
    decoder             512 wide, 8 blocks, 16 heads all L positions + cls
    decoder_pred        512 -> target dim            (B, L, 16 * 16 * 3)
    ==================  ===========================  ==========================
    """

    loss_name = "loss_mae"

    def __init__(
        self,
        *,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        mask_ratio=0.75,
        target="norm_pixels",
        use_act_checkpoint=False,
        pixel_mean=IMAGENET_PIXEL_MEAN,
        pixel_std=IMAGENET_PIXEL_STD,
        input_format="BGR",
    ):
        """
        Args:
            img_size (int): side of the square input; ``pos_embed`` is fixed at its grid.
            mask_ratio (float): share of the patches removed per image (MAE: 0.75).
            target (str or nn.Module): what is predicted per patch, a name of
                :func:`~.targets.build_target` or a target module; ``"norm_pixels"``
                is MAE's ``norm_pix_loss=True``, ``"pixels"`` its False.
            use_act_checkpoint (bool): recompute each block in the backward pass.
            pixel_mean, pixel_std, input_format: see :class:`~.base.ImagePretrainer`.
            Others as in ``models_mae.MaskedAutoencoderViT``.
        """
        super().__init__(pixel_mean, pixel_std, input_format)
        self.patch_size, self.mask_ratio = patch_size, mask_ratio
        self.grid = img_size // patch_size
        self.use_act_checkpoint = use_act_checkpoint
        self.target = build_target(target, patch_size, in_chans=in_chans) if isinstance(target, str) else target

        self.patch_embed, self.cls_token, self.pos_embed, self.blocks, self.norm = mae_encoder_parts(
            img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, norm_layer
        )

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed_2d(decoder_embed_dim, self.grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, self.target.dim)
        self._init_weights()

    def _init_weights(self):
        init_mae_encoder(self.patch_embed, (self.cls_token, self.mask_token),
                         (*self.blocks, self.norm, self.decoder_embed, *self.decoder_blocks, self.decoder_norm,
                          self.decoder_pred))

    def forward_encoder(self, images, mask_ratio, noise=None):
        """Encode the visible patches of each image.

        Args:
            images (Tensor): (B, C, img_size, img_size), normalised.
            mask_ratio (float): share of patches to remove.
            noise (Tensor or None): (B, L) masking noise, see :func:`~d2backbones.layers.random_masking`.

        Returns:
            latent (Tensor): (B, 1 + K, embed_dim), the cls token then the K visible tokens.
            mask (Tensor): (B, L), 1 at removed patches.
            ids_restore (Tensor): (B, L).
        """
        tokens = self.patch_embed(images)
        check_patch_grid(tokens.shape[1:3], self.grid, self.patch_size, "MAE")
        tokens = tokens.flatten(1, 2) + self.pos_embed[:, 1:].to(tokens.dtype)
        visible, mask, ids_restore = random_masking(tokens, mask_ratio, noise)
        latent = run_token_blocks(self.blocks, prepend_cls_token(visible, self.cls_token, self.pos_embed),
                                  self.use_act_checkpoint)
        return self.norm(latent), mask, ids_restore

    def forward_decoder(self, latent, ids_restore):
        """(B, 1 + K, embed_dim) encoded tokens -> (B, L, target dim) predictions, grid order."""
        x = self.decoder_embed(latent)
        batch, length = ids_restore.shape
        fill = self.mask_token.to(x.dtype).expand(batch, length + 1 - x.shape[1], -1)
        tokens = unshuffle_tokens(torch.cat([x[:, 1:], fill], dim=1), ids_restore)
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed.to(x.dtype)
        x = self.decoder_norm(run_token_blocks(self.decoder_blocks, x, self.use_act_checkpoint))
        return self.decoder_pred(x)[:, 1:]

    def forward_images(self, images, mask_ratio=None, noise=None):
        """
        Args:
            images (Tensor): (B, C, img_size, img_size), normalised RGB.
            mask_ratio (float or None): default ``self.mask_ratio``.
            noise (Tensor or None): (B, L) masking noise (None: random).

        Returns:
            dict: ``loss`` (scalar), ``pred`` and ``target`` (B, L, target dim),
            ``mask`` (B, L), 1 at removed patches.
        """
        latent, mask, ids_restore = self.forward_encoder(
            images, self.mask_ratio if mask_ratio is None else mask_ratio, noise
        )
        pred = self.forward_decoder(latent, ids_restore)
        target = self.target(images)
        return {"loss": masked_patch_mse(pred, target, mask), "pred": pred, "target": target, "mask": mask}
