"""MIMDet (Fang et al., "Unleashing Vanilla Vision Transformer with Masked Image
Modeling for Object Detection", ICCV 2023): an MAE-pretrained plain ViT turned into a
hybrid ConvNet-ViT detector backbone.

- :class:`~.conv_stem.ConvStem` (random init) replaces the patchify stem. Its stride-4
  and stride-8 maps are c2 and c3; its stride-16 map becomes the tokens.
- :class:`MIMDetEncoder` is the MAE encoder. While training it sees only a random
  ``sample_ratio`` share of the tokens, as in MAE pretraining.
- :class:`MIMDetDecoder` is the first blocks of the MAE decoder. It puts the encoded
  tokens back on the full grid, fills the positions the encoder did not see, and
  gives c4. c5 is c4 max-pooled.

Parameter names follow the reference implementation (hustvl/MIMDet), so its released
detectors load through ``DetectionCheckpointer`` unchanged.
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.modeling import Backbone

from ..layers import Block, mae_weight_init, resize_abs_pos_embed, run_token_blocks, sincos_pos_embed_2d
from .conv_stem import TOKEN_STRIDE, ConvStem
from .token_sampling import gather_tokens, num_kept_tokens, sample_kept_tokens, valid_token_mask

__all__ = ["MIMDetBackbone", "MIMDetDecoder", "MIMDetEncoder", "UNKEPT_TOKEN_FILLS"]

UNKEPT_TOKEN_FILLS = ("conv_feature", "mask_token")


class MIMDetEncoder(nn.Module):
    """ConvStem + MAE ViT encoder over the sampled tokens (global attention, no cls token,
    no relative position).

    ``pos_embed`` is MAE's fixed sine-cosine embedding, frozen, stored at the
    ``img_size / 16`` grid with a cls slot (the reference's shape, so its checkpoints
    load) and resized to each input in the forward pass.
    """

    def __init__(
        self,
        img_size=800,
        in_chans=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        drop_path_rate=0.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-5),
        use_act_checkpoint=False,
        stem_act_checkpoint=False,
    ):
        """
        Args:
            img_size (int): side of the square grid ``pos_embed`` is stored at, over 16.
            use_act_checkpoint (bool): recompute each encoder block in the backward pass.
            stem_act_checkpoint (bool): the same for the ConvStem, as one segment.
            Others as in a timm / MAE ViT.
        """
        super().__init__()
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = ConvStem(in_chans, embed_dim, use_act_checkpoint=stem_act_checkpoint)
        grid = img_size // TOKEN_STRIDE
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim), requires_grad=False)
        drop_path_rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=rate, norm_layer=norm_layer)
            for rate in drop_path_rates
        )
        self.norm = norm_layer(embed_dim)

        self.pos_embed.data.copy_(sincos_pos_embed_2d(embed_dim, grid))
        self.blocks.apply(mae_weight_init)
        mae_weight_init(self.norm)

    def forward(self, x, sample_ratio, image_sizes=None):
        """
        Args:
            x (Tensor): (B, in_chans, H, W) with H, W multiples of 16.
            sample_ratio (float): share of the H/16 x W/16 tokens the blocks see.
            image_sizes (list[tuple[int, int]] or None): unpadded (h, w) of each image.

        Returns:
            dict: ``stem``: the ConvStem's stride 4/8/16 maps; ``latent``: (B, K, C)
            encoded tokens; ``kept``: (B, K) their grid positions; ``grid``: (H/16, W/16).
        """
        stem_maps = self.patch_embed(x)
        batch, _, height, width = stem_maps[-1].shape
        tokens = stem_maps[-1].flatten(2).transpose(1, 2)
        tokens = tokens + resize_abs_pos_embed(self.pos_embed, True, (height, width)).flatten(1, 2)

        if sample_ratio == 1.0:
            # Every token in grid order, which is what sampling returns at ratio 1, without
            # its Python token count and padding sizes: a trace would freeze those at the
            # traced input's size (tools/export_model.py traces this path).
            kept = torch.arange(height * width, device=x.device).expand(batch, -1)
        else:
            valid = valid_token_mask(image_sizes, (height, width), batch, x.device)
            kept = sample_kept_tokens(valid, num_kept_tokens(height * width, sample_ratio))
        latent = run_token_blocks(self.blocks, gather_tokens(tokens, kept), self.use_act_checkpoint)
        return {"stem": stem_maps, "latent": self.norm(latent), "kept": kept, "grid": (height, width)}


class MIMDetDecoder(nn.Module):
    """The first ``depth`` blocks of the MAE decoder, run on the full token grid.

    Encoded tokens are projected to the decoder width and put back at their
    positions. Positions the encoder skipped are filled according to
    ``unkept_token_fill``:

    - ``"conv_feature"`` (current reference): the ConvStem's stride-16 feature at that
      position, projected by ``conv_feat_proj``;
    - ``"mask_token"`` (the reference's v1): one learned ``mask_token``, as in MAE.

    Shapes: latent (B, K, embed_dim) -> (B, decoder_embed_dim, H/16, W/16).
    """

    def __init__(
        self,
        img_size=800,
        embed_dim=768,
        decoder_embed_dim=512,
        depth=4,
        num_heads=16,
        mlp_ratio=4.0,
        drop_path_rate=0.0,
        norm_layer=nn.LayerNorm,
        unkept_token_fill="conv_feature",
        use_act_checkpoint=False,
    ):
        """
        Args:
            img_size (int): side of the grid ``decoder_pos_embed`` is stored at, over 16.
            embed_dim (int): width of the encoder.
            unkept_token_fill (str): "conv_feature" or "mask_token", see above.
            use_act_checkpoint (bool): recompute each decoder block in the backward pass.
        """
        super().__init__()
        if unkept_token_fill not in UNKEPT_TOKEN_FILLS:
            raise ValueError(f"unkept_token_fill must be one of {UNKEPT_TOKEN_FILLS}, got {unkept_token_fill!r}")
        self.unkept_token_fill = unkept_token_fill
        self.use_act_checkpoint = use_act_checkpoint
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        if unkept_token_fill == "conv_feature":
            self.conv_feat_proj = nn.Linear(embed_dim, decoder_embed_dim)
        else:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        grid = img_size // TOKEN_STRIDE
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, grid * grid + 1, decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                  drop_path=drop_path_rate, norm_layer=norm_layer)
            for _ in range(depth)
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)

        self.decoder_pos_embed.data.copy_(sincos_pos_embed_2d(decoder_embed_dim, grid))
        self.apply(mae_weight_init)
        if unkept_token_fill == "mask_token":
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent, kept, grid, stem_feature):
        """
        Args:
            latent (Tensor): (B, K, embed_dim) encoder output.
            kept (Tensor): (B, K) grid positions of ``latent``.
            grid (tuple[int, int]): (H, W) token grid.
            stem_feature (Tensor): (B, embed_dim, H, W) ConvStem stride-16 map.
        """
        height, width = grid
        batch = latent.shape[0]
        decoded = self.decoder_embed(latent)
        channels = decoded.shape[-1]
        if self.unkept_token_fill == "conv_feature":
            filler = self.conv_feat_proj(stem_feature.flatten(2).transpose(1, 2))
        else:
            filler = self.mask_token.to(decoded.dtype).expand(batch, height * width, channels)
        tokens = filler.scatter(1, kept[..., None].expand(-1, -1, channels), decoded)
        tokens = tokens + resize_abs_pos_embed(self.decoder_pos_embed, True, grid).flatten(1, 2)
        tokens = self.decoder_norm(run_token_blocks(self.decoder_blocks, tokens, self.use_act_checkpoint))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class MIMDetBackbone(Backbone):
    """ConvStem + partial-token encoder + decoder, giving c2-c5 for an FPN.

    ============  =======  ====================================
    feature       stride   channels (ViT-B)
    ============  =======  ====================================
    c2            4        ConvStem stage 2 (192)
    c3            8        ConvStem stage 3 (384)
    c4            16       decoder output (512)
    c5            32       c4 max-pooled (512)
    ============  =======  ====================================

    Padding-aware sampling needs each image's unpadded size. Pass ``image_sizes`` to
    ``forward``, or let :class:`~d2backbones.mimdet.PaddingAwareRCNN` hand them over
    (detectron2's ``FPN`` calls its bottom-up with the padded tensor only). Without
    them every token counts as image content.
    """

    def __init__(self, encoder, decoder, sample_ratio=0.5, test_sample_ratio=1.0, allow_random_decoder=False):
        """
        Args:
            encoder (MIMDetEncoder):
            decoder (MIMDetDecoder):
            sample_ratio (float): share of tokens the encoder sees while training.
            test_sample_ratio (float): the same in eval mode. Published APs use 1.0.
            allow_random_decoder (bool): let :func:`convert_mae_checkpoint` load an
                encoder-only MAE checkpoint, leaving the decoder at random init. Read
                by the checkpoint conversion only; nothing is loaded here.
        """
        super().__init__()
        num_kept_tokens(1, sample_ratio)
        num_kept_tokens(1, test_sample_ratio)
        self.encoder = encoder
        self.decoder = decoder
        self.sample_ratio = sample_ratio
        self.test_sample_ratio = test_sample_ratio
        self.allow_random_decoder = allow_random_decoder
        self._pending_image_sizes = None

        stem_channels = encoder.patch_embed.out_channels
        decoder_channels = decoder.decoder_norm.normalized_shape[0]
        self._out_features = ["c2", "c3", "c4", "c5"]
        self._out_feature_channels = dict(zip(self._out_features, stem_channels[:2] + [decoder_channels] * 2))
        self._out_feature_strides = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}

    @property
    def size_divisibility(self):
        return 32

    def set_image_sizes(self, image_sizes):
        """Unpadded (h, w) of each image of the next batch; used by the next forward only."""
        self._pending_image_sizes = [tuple(int(v) for v in size) for size in image_sizes]

    def forward(self, x, image_sizes=None):
        """
        Args:
            x (Tensor): (B, C, H, W), H and W multiples of 16 (of 32 for an even c5).
            image_sizes (list[tuple[int, int]] or None): unpadded sizes; defaults to
                those given by :meth:`set_image_sizes`.

        Returns:
            dict[str, Tensor]: c2-c5.
        """
        if x.shape[-2] % TOKEN_STRIDE or x.shape[-1] % TOKEN_STRIDE:
            raise ValueError(
                f"MIMDet input of size {tuple(x.shape[-2:])} is not a multiple of {TOKEN_STRIDE}; pad it "
                "(detectron2 does, from the FPN's size_divisibility)"
            )
        if image_sizes is None:
            image_sizes = self._pending_image_sizes
        self._pending_image_sizes = None
        ratio = self.sample_ratio if self.training else self.test_sample_ratio
        encoded = self.encoder(x, ratio, image_sizes)
        c2, c3, stem_feature = encoded["stem"]
        c4 = self.decoder(encoded["latent"], encoded["kept"], encoded["grid"], stem_feature)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": F.max_pool2d(c4, 2)}
