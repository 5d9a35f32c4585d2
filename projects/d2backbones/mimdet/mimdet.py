"""MIMDet (Fang et al., "Unleashing Vanilla Vision Transformer with Masked Image
Modeling for Object Detection", ICCV 2023): an MAE-pretrained plain ViT turned into a
hybrid ConvNet-ViT detector backbone.

- :class:`ConvStem` (random init) replaces the patchify stem. Its stride-4 and
  stride-8 maps are c2 and c3; its stride-16 map becomes the tokens.
- :class:`MIMDetEncoder` is the MAE encoder. While training it sees only a random
  ``sample_ratio`` share of the tokens, as in MAE pretraining.
- :class:`MIMDetDecoder` is the first blocks of the MAE decoder. It puts the encoded
  tokens back on the full grid, fills the positions the encoder did not see, and
  gives c4. c5 is c4 max-pooled.

Parameter names follow the reference implementation (hustvl/MIMDet), so its released
detectors load through ``DetectionCheckpointer`` unchanged.

Checkpoint formats (``is_<format>_checkpoint`` / ``convert_<format>_checkpoint`` pairs):

- ``mimdet``: a detector of the reference code or ours; keys as they are.
- ``mae_full``: MAE encoder + decoder; initialises the encoder and the decoder.
- ``mae``: MAE encoder only; refused (the decoder would stay random, which the
  reference trains to NaN) unless ``allow_random_decoder`` opts in.
"""
import logging
import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from detectron2.modeling import Backbone

from ..checkpoint.remap import drop_keys, rename_keys, strip_prefixes
from ..layers import resize_abs_pos_embed
from ..vitdet.vit import Block

__all__ = [
    "ConvStem",
    "MIMDetBackbone",
    "MIMDetDecoder",
    "MIMDetEncoder",
    "convert_mae_checkpoint",
    "convert_mae_full_checkpoint",
    "convert_mimdet_checkpoint",
    "is_mae_checkpoint",
    "is_mae_full_checkpoint",
    "is_mimdet_checkpoint",
    "mimdet_lr_factor",
    "num_kept_tokens",
    "sample_kept_tokens",
    "sincos_pos_embed_2d",
]

logger = logging.getLogger(__name__)

# Four stride-2 convs: tokens live at stride 16, like the ViT-B/16 patches they replace.
TOKEN_STRIDE = 16
STEM_DEPTH = 4
UNKEPT_TOKEN_FILLS = ("conv_feature", "mask_token")


def sincos_pos_embed_2d(embed_dim, grid_size):
    """Fixed 2-D sine-cosine position embedding of MAE, with a zero cls slot first.

    The first half of the channels encodes the column, the second half the row, each
    as ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000 ** (-k / (C / 4))``.

    Returns:
        Tensor: (1, 1 + grid_size ** 2, embed_dim).
    """
    if embed_dim % 4:
        raise ValueError(f"a 2-D sine-cosine embedding needs embed_dim divisible by 4, got {embed_dim}")
    quarter = embed_dim // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")

    def encode(positions):
        angles = positions.reshape(-1, 1) * frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    grid = torch.cat([encode(cols), encode(rows)], dim=1)
    return torch.cat([grid.new_zeros(1, embed_dim), grid]).float()[None]


def num_kept_tokens(num_tokens, ratio):
    """How many of ``num_tokens`` tokens a sample ratio keeps: ``int(L * ratio)``, at least 1."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"sample ratio must be in (0, 1], got {ratio}")
    return max(1, int(num_tokens * ratio))


def sample_kept_tokens(valid, num_keep):
    """Pick ``num_keep`` token positions per image at random, padding last.

    Every image gets its own random order; positions in the padded area (``valid``
    False) come after all real ones, so they are dropped first. The result is sorted,
    so keeping every token gives ``0..L-1`` in order. Draws from torch's global
    generator: deterministic under ``torch.manual_seed``.

    Args:
        valid (Tensor): (B, L) bool, True where the token covers image content.
        num_keep (int): tokens to keep per image.

    Returns:
        Tensor: (B, num_keep) int64 positions, ascending.
    """
    noise = torch.rand(valid.shape, device=valid.device)
    # Noise is below 1, so any padded position ranks after every valid one.
    noise = noise.masked_fill(~valid, 2.0)
    kept = noise.argsort(dim=1)[:, :num_keep]
    return kept.sort(dim=1).values


def valid_token_mask(image_sizes, grid_hw, batch_size, device):
    """(B, H * W) bool: which stride-16 tokens touch the unpadded part of each image.

    Args:
        image_sizes (list[tuple[int, int]] or None): (h, w) of each image before
            padding; None means no padding.
        grid_hw (tuple[int, int]): token grid of the padded batch.
    """
    height, width = grid_hw
    if image_sizes is None:
        return torch.ones(batch_size, height * width, dtype=torch.bool, device=device)
    if len(image_sizes) != batch_size:
        raise ValueError(f"got {len(image_sizes)} image sizes for a batch of {batch_size} images")
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    masks = [
        (rows[:, None] < math.ceil(h / TOKEN_STRIDE)) & (cols[None, :] < math.ceil(w / TOKEN_STRIDE))
        for h, w in image_sizes
    ]
    return torch.stack(masks).flatten(1)


def _gather_tokens(tokens, index):
    """tokens (B, L, C), index (B, K) -> (B, K, C)."""
    return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))


def _run_token_blocks(blocks, tokens, use_act_checkpoint):
    """Apply ViT blocks to a (B, N, C) token sequence with global attention.

    The shared :class:`~d2backbones.vitdet.vit.Block` works on (B, H, W, C) maps; a
    sampled subset of tokens has no grid, so it runs as a 1 x N map.
    """
    x = tokens[:, None]
    for block in blocks:
        if use_act_checkpoint and block.training and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x[:, 0]


def _init_transformer_weights(module):
    """MAE's init: xavier-uniform linear layers, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ConvStem(nn.Module):
    """Four 3x3 stride-2 convs (no bias) with GroupNorm(1, C) and GELU, then a 1x1 conv
    to the encoder width (Xiao et al., "Early Convolutions Help Transformers See Better").

    Widths double from ``embed_dim / 8``: 96, 192, 384, 768 for ViT-B. Parameter names
    (``proj.<stage>.<layer>``) are the reference's.

    Shapes: (N, in_chans, H, W) -> [(N, C/4, H/4, W/4), (N, C/2, H/8, W/8), (N, C, H/16, W/16)]
    with C = embed_dim: the stride-4, stride-8 and stride-16 maps.
    """

    def __init__(self, in_chans=3, embed_dim=768, use_act_checkpoint=False):
        super().__init__()
        if embed_dim % 2 ** (STEM_DEPTH - 1):
            raise ValueError(f"ConvStem halves embed_dim={embed_dim} three times; it must be divisible by 8")
        self.use_act_checkpoint = use_act_checkpoint
        widths = [embed_dim // 2 ** (STEM_DEPTH - 1 - i) for i in range(STEM_DEPTH)]
        self.out_channels = [widths[1], widths[2], embed_dim]
        stages = []
        for i, width in enumerate(widths):
            layers = [
                nn.Conv2d(in_chans if i == 0 else widths[i - 1], width, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(1, width, eps=1e-6),
                nn.GELU(),
            ]
            if i == STEM_DEPTH - 1:
                layers.append(nn.Conv2d(width, embed_dim, 1))
            stages.append(nn.Sequential(*layers))
        self.proj = nn.ModuleList(stages)

    def forward(self, x):
        maps = []
        for stage in self.proj:
            if self.use_act_checkpoint and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            maps.append(x)
        # The stride-2 map is too large and too shallow to be a pyramid level.
        return maps[1:]


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
            stem_act_checkpoint (bool): the same for each ConvStem stage.
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
        self.blocks.apply(_init_transformer_weights)
        _init_transformer_weights(self.norm)

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

        valid = valid_token_mask(image_sizes, (height, width), batch, x.device)
        kept = sample_kept_tokens(valid, num_kept_tokens(height * width, sample_ratio))
        latent = _run_token_blocks(self.blocks, _gather_tokens(tokens, kept), self.use_act_checkpoint)
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
        self.apply(_init_transformer_weights)
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
        tokens = self.decoder_norm(_run_token_blocks(self.decoder_blocks, tokens, self.use_act_checkpoint))
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


def mimdet_lr_factor(name, encoder_lr_multiplier):
    """lr factor of a detector parameter in the MIMDet recipe (no layer-wise decay).

    The pretrained encoder blocks train at ``base_lr / m``, the random ConvStem at
    ``base_lr``, and everything new after the encoder (decoder, FPN, heads) at
    ``base_lr * m``; m is 2.0 for ViT-B and 3.5 for ViT-L. Plug into
    ``get_default_optimizer_params(lr_factor_func=partial(mimdet_lr_factor, encoder_lr_multiplier=m))``.
    """
    if ".bottom_up.encoder.patch_embed." in name:
        return 1.0
    if ".bottom_up.encoder." in name:
        return 1.0 / encoder_lr_multiplier
    return encoder_lr_multiplier


# ---- MAE checkpoints -------------------------------------------------------

# The reference config (800 px grid, 4 decoder blocks, conv-feature fill), assumed
# when convert_mae_checkpoint gets no model to read the sizes from.
REFERENCE_GRID = 800 // TOKEN_STRIDE
REFERENCE_DECODER_DEPTH = 4
MAE_ENCODER_KEY = "blocks.0.attn.qkv.weight"
MAE_DECODER_KEYS = ("decoder_embed.weight", "decoder_pos_embed", "decoder_blocks.0.attn.qkv.weight")
ENCODER_PREFIX = "backbone.bottom_up.encoder."
DECODER_PREFIX = "backbone.bottom_up.decoder."
MAE_RULES = [
    (r"^(decoder_|mask_token$)", DECODER_PREFIX + r"\1"),
    (r"^(blocks\.|norm\.|pos_embed$)", ENCODER_PREFIX + r"\1"),
]
ENCODER_ONLY_MESSAGE = (
    "this MAE checkpoint holds only the encoder: it has no {missing}. MIMDet initialises "
    "its decoder from the MAE decoder, and with a random decoder the reference trains "
    "to NaN (hustvl/MIMDet issues #7 and #26). Use the full MAE checkpoint "
    "(mae_pretrain_vit_base_full.pth / mae_pretrain_vit_large_full.pth from "
    "facebookresearch/mae), or opt in to a random decoder with "
    "model.backbone.bottom_up.allow_random_decoder=True"
)


def _strip_mae_prefixes(state_dict):
    return strip_prefixes(state_dict, ("module.", "encoder."))


def _has_mae_encoder(state_dict):
    return all(key in state_dict for key in ("patch_embed.proj.weight", "pos_embed", MAE_ENCODER_KEY))


def is_mae_checkpoint(state_dict):
    """MAE encoder only (``mae_pretrain_vit_{base,large}.pth``): no decoder, no classifier."""
    state_dict = _strip_mae_prefixes(state_dict)
    return _has_mae_encoder(state_dict) and not any(k.startswith(("decoder_", "head.")) for k in state_dict)


def is_mae_full_checkpoint(state_dict):
    """MAE encoder and decoder (``mae_pretrain_vit_{base,large}_full.pth``)."""
    state_dict = _strip_mae_prefixes(state_dict)
    return _has_mae_encoder(state_dict) and any(k.startswith("decoder_blocks.") for k in state_dict)


def is_mimdet_checkpoint(state_dict):
    """A detector of the reference code (its releases) or ours: ConvStem and decoder keys."""
    return (ENCODER_PREFIX + "patch_embed.proj.0.0.weight" in state_dict
            and DECODER_PREFIX + "decoder_embed.weight" in state_dict)


def convert_mimdet_checkpoint(state_dict, model=None):
    """Already in our keys (we use the reference's names); returned as is (a new dict)."""
    return dict(state_dict)


def _find_backbone(model):
    if model is None:
        return None
    found = [m for m in model.modules() if isinstance(m, MIMDetBackbone)]
    if len(found) != 1:
        raise ValueError(f"expected one MIMDetBackbone in the model to convert an MAE checkpoint for, found {len(found)}")
    return found[0]


def _resize_pos_embed_with_cls(pos_embed, grid):
    """(1, 1 + S*S, C) -> (1, 1 + grid*grid, C), bicubic, cls slot kept."""
    resized = resize_abs_pos_embed(pos_embed, True, (grid, grid)).flatten(1, 2)
    return torch.cat([pos_embed[:, :1], resized], dim=1)


def convert_mae_checkpoint(state_dict, model=None, allow_random_decoder=None):
    """MAE ViT checkpoint, full or encoder-only -> MIMDet detector keys (``backbone.bottom_up.{encoder,decoder}.*``).

    A full MAE checkpoint (``mae_pretrain_vit_{base,large}_full.pth``) initialises the
    encoder blocks and norm and the first decoder blocks, ``decoder_embed`` and
    ``decoder_norm``; both position embeddings are resized from the 14 x 14 grid to the
    model's. Skipped, and logged: ``cls_token`` and ``patch_embed`` (the ConvStem
    replaces the patchify stem), ``decoder_pred``, decoder blocks beyond the model's
    depth, and ``mask_token`` unless the decoder fills with one.

    An encoder-only checkpoint raises ``ValueError`` unless ``allow_random_decoder``
    (default: the model backbone's ``allow_random_decoder`` setting) is True; then
    the decoder stays at random init, which is logged as a warning.

    Args:
        state_dict (dict[str, Tensor]): the unwrapped MAE tensors.
        model (nn.Module or None): the detector, to read the grid and decoder depth
            from; None assumes the reference config (50 x 50 grid, 4 decoder blocks,
            conv-feature fill).
    """
    state_dict = _strip_mae_prefixes(state_dict)
    backbone = _find_backbone(model)
    if allow_random_decoder is None:
        allow_random_decoder = bool(backbone is not None and backbone.allow_random_decoder)

    missing_decoder = [k for k in MAE_DECODER_KEYS if k not in state_dict]
    if missing_decoder:
        if not allow_random_decoder:
            raise ValueError(ENCODER_ONLY_MESSAGE.format(missing=", ".join(missing_decoder)))
        logger.warning(
            "MAE checkpoint has no decoder (%s); the MIMDet decoder stays at random init "
            "(allow_random_decoder=True)", ", ".join(missing_decoder)
        )

    if backbone is not None:
        decoder = backbone.decoder
        grids = {key: math.isqrt(param.shape[1] - 1) for key, param in
                 (("pos_embed", backbone.encoder.pos_embed), ("decoder_pos_embed", decoder.decoder_pos_embed))}
        decoder_depth = len(decoder.decoder_blocks)
        keeps_mask_token = decoder.unkept_token_fill == "mask_token"
        model_width = backbone.encoder.pos_embed.shape[-1]
        checkpoint_width = state_dict[MAE_ENCODER_KEY].shape[1]
        if checkpoint_width != model_width:
            raise ValueError(
                f"MAE checkpoint is {checkpoint_width} wide but the MIMDet encoder is {model_width} "
                "wide: pick the MAE file of the same ViT size (base 768, large 1024)"
            )
    else:
        decoder_depth, keeps_mask_token = REFERENCE_DECODER_DEPTH, False
        grids = {"pos_embed": REFERENCE_GRID, "decoder_pos_embed": REFERENCE_GRID}
        logger.info("No model given: converting the MAE checkpoint for the reference MIMDet (800 px grid, 4 decoder blocks)")

    used_blocks = "|".join(str(i) for i in range(decoder_depth))
    skipped = [r"^cls_token$", r"^patch_embed\.", r"^decoder_pred\.", rf"^decoder_blocks\.(?!({used_blocks})\.)"]
    if not keeps_mask_token:
        skipped.append(r"^mask_token$")
    kept, dropped = drop_keys(state_dict, skipped)
    for key, grid in grids.items():
        if key in kept:
            kept[key] = _resize_pos_embed_with_cls(kept[key], grid)

    converted = rename_keys(kept, MAE_RULES)
    unknown = sorted(k for k in converted if not k.startswith("backbone.bottom_up."))
    if unknown:
        raise ValueError(f"MAE checkpoint has keys MIMDet does not know: {unknown[:10]}")
    if dropped:
        logger.info("MAE -> MIMDet: skipped %d keys: %s", len(dropped), ", ".join(sorted(dropped)))
    return converted


def convert_mae_full_checkpoint(state_dict, model=None):
    """Full MAE checkpoint -> MIMDet detector keys; see :func:`convert_mae_checkpoint`."""
    return convert_mae_checkpoint(state_dict, model)
