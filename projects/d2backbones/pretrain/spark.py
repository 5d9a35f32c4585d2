"""SparK (Tian et al., "Designing BERT for Convolutional Networks: Sparse and
Hierarchical Masked Modeling", ICLR 2023) for any encoder of :mod:`.sparse_encoder`.

Per image, a random ``mask_ratio`` of the cells of the encoder's coarsest grid (one
cell per ``downsample_ratio`` x ``downsample_ratio`` pixels) is masked. The encoder
runs as a sparse CNN on the visible cells only and returns one map per scale. Each
map is "densified": normalised (LayerNorm over channels, SparK's choice for ConvNeXt),
its masked positions (the cell mask repeated to that map's resolution) filled with
that scale's learned mask token, and projected to the decoder's width at that scale.
The light UNet decoder (:class:`~.light_decoder.LightDecoder`) goes from the coarsest
map back to full-resolution pixels, adding the finer maps on the way; the loss is
the squared error to the per-cell target (by default normalised pixels, SparK's) on
the masked cells only.

Parameter names are SparK's ``spark.py`` (``sparse_encoder.*``, ``dense_decoder.*``,
``densify_norms.{i}``, ``densify_projs.{i}``, ``mask_tokens.{i}``, scale 0 the
coarsest), except inside the encoder, which holds its family's detection-backbone
names so that ``sparse_encoder.*`` loads into the family's detectors (the ``spark``
checkpoint format of :mod:`d2backbones.checkpoint.shared_formats`).
"""
import torch
import torch.nn as nn

from ..layers import LayerNorm2d, upsample_mask, visible_from_noise
from .base import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, ImagePretrainer
from .light_decoder import LightDecoder
from .loss import masked_patch_mse
from .sparse_encoder import check_sparse_encoder
from .targets import build_target, patchify

__all__ = ["SparK", "num_visible_cells"]

DENSIFY_NORMS = ("LN", "none")


def num_visible_cells(num_cells, mask_ratio):
    """Cells kept of ``num_cells`` at ``mask_ratio``: SparK rounds, ``round(L * (1 - ratio))``
    (MAE truncates), so 7 x 7 cells at 0.6 keep 20; at least one."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, round(num_cells * (1 - mask_ratio)))


class SparK(ImagePretrainer):
    """SparK: a sparse CNN encoder, per-scale mask tokens and a light UNet decoder.

    ===============  =============================  ==================================
    part             ConvNeXt-B (published)         shape (224 px input)
    ===============  =============================  ==================================
    mask             0.6 of the 7 x 7 cells          visible (B, 7, 7), 20 cells kept
    sparse_encoder   ConvNeXt-B, 4 stages            (B, 128..1024, 56..7, 56..7)
    densify          LN, mask token, 1x1 / 3x3 conv  (B, 768 / 2**i, 7 * 2**i, ...)
    dense_decoder    5 UNet blocks, 768 -> 24        (B, 3, 224, 224)
    loss             norm-pixel L2, masked cells     per 32 x 32 cell
    ===============  =============================  ==================================
    """

    loss_name = "loss_spark"

    def __init__(
        self,
        *,
        encoder,
        img_size=224,
        in_chans=3,
        decoder_width=768,
        decoder_norm="BN",
        densify_norm="LN",
        mask_ratio=0.6,
        target="norm_pixels",
        pixel_mean=IMAGENET_PIXEL_MEAN,
        pixel_std=IMAGENET_PIXEL_STD,
        input_format="BGR",
    ):
        """
        Args:
            encoder (nn.Module): a sparse encoder (:mod:`.sparse_encoder`), e.g.
                :class:`d2backbones.convnext.SparseConvNeXt`.
            img_size (int): side of the square training crops; sets ``grid`` (cells per
                side), which pictures use to draw masking noise. Any multiple of the
                cell runs.
            decoder_width (int): channels of the decoder's first block (SparK: 768).
            decoder_norm (str): norm of the decoder blocks ("BN", or "SyncBN" across GPUs).
            densify_norm (str): "LN" (SparK's for ConvNeXt) or "none".
            mask_ratio (float): share of the cells masked per image (SparK: 0.6).
            target (str or nn.Module): the per-cell target, a :func:`~.targets.build_target`
                name or module of ``cell * cell * in_chans`` values per cell, since the
                decoder predicts pixels.
            pixel_mean, pixel_std, input_format: see :class:`~.base.ImagePretrainer`.
        """
        super().__init__(pixel_mean, pixel_std, input_format)
        check_sparse_encoder(encoder)
        if densify_norm not in DENSIFY_NORMS:
            raise ValueError(f"densify_norm must be one of {DENSIFY_NORMS}, got {densify_norm!r}")
        self.patch_size = encoder.downsample_ratio
        if img_size % self.patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of the encoder's cell {self.patch_size}")
        self.grid = img_size // self.patch_size
        self.mask_ratio = mask_ratio
        self.target = build_target(target, self.patch_size, in_chans=in_chans) if isinstance(target, str) else target
        if self.target.dim != self.patch_size**2 * in_chans:
            raise ValueError(f"SparK's decoder predicts pixels, {self.patch_size**2 * in_chans} values per cell, but "
                             f"the target gives {self.target.dim}: use a pixel target ('pixels' or 'norm_pixels')")

        self.sparse_encoder = encoder
        self.dense_decoder = LightDecoder(self.patch_size, decoder_width, in_chans, decoder_norm)
        # Scale 0 is the coarsest map, as the decoder takes them.
        encoder_widths = list(encoder.out_channels)[::-1]
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, c, 1, 1)) for c in encoder_widths)
        self.densify_norms = nn.ModuleList(
            LayerNorm2d(c) if densify_norm == "LN" else nn.Identity() for c in encoder_widths
        )
        self.densify_projs = nn.ModuleList(
            self._densify_proj(i, c, self.dense_decoder.channels[i]) for i, c in enumerate(encoder_widths)
        )
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02, a=-0.02, b=0.02)

    @staticmethod
    def _densify_proj(scale, in_channels, out_channels):
        # SparK: 1 x 1 at the coarsest scale (none if the widths agree), 3 x 3 at the others.
        if scale == 0 and in_channels == out_channels:
            return nn.Identity()
        kernel = 1 if scale == 0 else 3
        return nn.Conv2d(in_channels, out_channels, kernel_size=kernel, padding=kernel // 2)

    def random_visible(self, batch, grid, mask_ratio, noise=None):
        """(B, rows, cols) bool, True at the visible cells; the ``num_visible_cells``
        lowest entries of ``noise`` (B, rows * cols) per image, U(0, 1) if None."""
        rows, cols = grid
        if noise is None:
            noise = torch.rand(batch, rows * cols, device=self.device)
        elif tuple(noise.shape) != (batch, rows * cols):
            raise ValueError(f"masking noise {tuple(noise.shape)} does not fit {batch} images of {rows}x{cols} cells")
        return visible_from_noise(noise.to(self.device), num_visible_cells(rows * cols, mask_ratio)).view(
            batch, rows, cols)

    def densify(self, features, visible):
        """Encoder maps (finest first, zero where masked) -> the decoder's inputs (coarsest first).

        Args:
            features (list[Tensor]): the encoder's outputs.
            visible (Tensor): (B, rows, cols) bool cell mask.
        """
        out = []
        for scale, x in enumerate(features[::-1]):
            m = upsample_mask(visible, 2**scale)[:, None]
            x = torch.where(m, self.densify_norms[scale](x), self.mask_tokens[scale].to(x.dtype))
            out.append(self.densify_projs[scale](x))
        return out

    def forward_images(self, images, mask_ratio=None, noise=None):
        """
        Args:
            images (Tensor): (B, C, H, W), normalised RGB, H and W multiples of ``patch_size``.
            mask_ratio (float or None): default ``self.mask_ratio``.
            noise (Tensor or None): (B, L) masking noise, L the cells (None: random).

        Returns:
            dict: ``loss`` (scalar); ``pred`` and ``target`` (B, L, cell * cell * C),
            ``pred`` the decoder's pixels cut in cells as :func:`~.targets.patchify`
            does; ``mask`` (B, L), 1 at masked cells; ``visible`` (B, rows, cols) bool.
        """
        batch, _, height, width = images.shape
        grid = (height // self.patch_size, width // self.patch_size)
        visible = self.random_visible(batch, grid, self.mask_ratio if mask_ratio is None else mask_ratio, noise)
        features = self.sparse_encoder(images, visible)
        pixels = self.dense_decoder(self.densify(features, visible))
        pred = patchify(pixels, self.patch_size)
        target = self.target(images)
        mask = (~visible).flatten(1).to(pred.dtype)
        return {"loss": masked_patch_mse(pred, target, mask), "pred": pred, "target": target, "mask": mask,
                "visible": visible}
