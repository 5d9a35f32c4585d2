"""Mask-token pretraining: MaskFeat and SimMIM, one model with four parts.

MaskFeat (Wei et al., CVPR 2022) and SimMIM (Xie et al., CVPR 2022) share a scheme:
the encoder sees every patch, with the masked ones' embeddings replaced by a learned
mask token; a light head predicts a target at every output position, and the loss
counts the masked positions only. They differ in the parts, which are arguments here:

========== =============================== ========================================
part       MaskFeat                        SimMIM
========== =============================== ========================================
mask       block-wise, ratio 0.4           random 32-px cells, ratio 0.6
target     HOG (:mod:`.hog`)               pixels (normalised image)
head       linear                          1 x 1 conv + PixelShuffle
loss       MSE                             L1
========== =============================== ========================================

The encoder is any :class:`MaskedEncoder`: :class:`~.masked_vit.MaskTokenViT` here,
Swin's in its family (``d2backbones.swin.masked``), given by the config. The
state dict is SimMIM's layout: ``encoder.*`` and ``decoder.*`` (the head).
"""
from typing import Protocol

import torch

from ..layers import upsample_mask
from .base import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, ImagePretrainer
from .loss import MASKED_LOSSES
from .mim_heads import HEADS
from .targets import build_target

__all__ = ["MaskTokenPretrainer", "MaskedEncoder"]


class MaskedEncoder(Protocol):
    """What :class:`MaskTokenPretrainer` needs of an encoder.

    Attributes:
        patch_size (int): pixels per side of an input token: where the mask token
            replaces a patch embedding (16 for ViT-B/16, 4 for Swin).
        out_stride (int): pixels per side of an output position, where a target is
            predicted (16 for ViT-B/16, 32 for Swin-B, 16 for a three-stage Swin).
        out_channels (int): channels of the output map.

    ``encoder(images, mask)``: images (B, C, H, W) and mask (B, H / patch_size,
    W / patch_size), 1 at masked tokens -> (B, out_channels, H / out_stride, W / out_stride).
    """

    patch_size: int
    out_stride: int
    out_channels: int

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ...


class MaskTokenPretrainer(ImagePretrainer):
    """An encoder with a mask token, a light head, a target and a loss on the masked positions.

    The mask generator draws (B, H / unit, W / unit) cells; they are repeated over the
    encoder's tokens (``unit / patch_size`` per side) and over the predicted patches
    (``unit / out_stride``), so ``unit`` must be a multiple of both. The target is
    built at ``out_stride``-pixel patches: one target vector per output position.
    """

    def __init__(
        self,
        *,
        encoder,
        mask_generator,
        target="pixels",
        head="linear",
        loss="mse",
        loss_name="loss_mim",
        pixel_mean=IMAGENET_PIXEL_MEAN,
        pixel_std=IMAGENET_PIXEL_STD,
        input_format="BGR",
    ):
        """
        Args:
            encoder (MaskedEncoder): e.g. :class:`~.masked_vit.MaskTokenViT`.
            mask_generator: :class:`~.mask_generators.BlockMask` (MaskFeat) or
                :class:`~.mask_generators.RandomMask` (SimMIM), any callable with ``unit``.
            target (str or nn.Module): a name of :func:`~.targets.build_target`
                (``"pixels"``, ``"norm_pixels"``, ``"hog"``) or a target module whose
                ``patch_size`` is the encoder's ``out_stride``.
            head (str or nn.Module): ``"linear"`` (MaskFeat), ``"pixel_shuffle"`` (SimMIM),
                or a module (B, C, h, w) -> (B, h * w, target dim).
            loss (str): ``"mse"`` (MaskFeat) or ``"l1"`` (SimMIM), on masked patches.
            loss_name (str): key of the loss in the training output (the metric's name).
            pixel_mean, pixel_std, input_format: see :class:`~.base.ImagePretrainer`.
        """
        super().__init__(pixel_mean, pixel_std, input_format)
        self.encoder = encoder
        self.mask_generator = mask_generator
        self.loss_name = loss_name
        stride, unit = encoder.out_stride, mask_generator.unit
        if unit % encoder.patch_size or unit % stride:
            raise ValueError(f"mask unit {unit} px must be a multiple of the encoder's patch size "
                             f"({encoder.patch_size}) and output stride ({stride}): change the mask generator's unit")
        self.target = build_target(target, stride) if isinstance(target, str) else target
        if self.target.patch_size != stride:
            raise ValueError(f"the target is per {self.target.patch_size}-px patch but the encoder predicts per "
                             f"{stride} px (its out_stride): build the target with patch_size={stride}")
        if loss not in MASKED_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; pick one of {', '.join(MASKED_LOSSES)}")
        self.loss_fn = MASKED_LOSSES[loss]
        if isinstance(head, str):
            if head not in HEADS:
                raise ValueError(f"unknown head {head!r}; pick one of {', '.join(HEADS)} or pass a module")
            head = HEADS[head](encoder.out_channels, self.target)
        # SimMIM's name for the head, so the checkpoint is laid out as SimMIM's.
        self.decoder = head

    @property
    def patch_size(self):
        """Pixels per side of a predicted patch (the encoder's output stride)."""
        return self.encoder.out_stride

    def sample_mask(self, batch, image_size, generator=None):
        """(B, H / unit, W / unit) mask cells for ``image_size`` = (H, W) inputs."""
        unit = self.mask_generator.unit
        height, width = image_size
        if height % unit or width % unit:
            raise ValueError(f"input {height}x{width} is not a multiple of the {unit}-px mask unit: "
                             f"crop to a multiple of {unit}")
        return self.mask_generator(batch, (height // unit, width // unit), generator)

    def forward_images(self, images, mask=None):
        """
        Args:
            images (Tensor): (B, C, H, W), normalised RGB.
            mask (Tensor or None): (B, H / unit, W / unit) cells, 1 = masked; None draws
                them from the mask generator (pass them for a repeatable picture).

        Returns:
            dict: ``loss`` (scalar); ``pred`` and ``target`` (B, L, target dim) at the
            L = H * W / out_stride^2 output positions; ``mask`` (B, L), 1 at masked ones.
        """
        if mask is None:
            mask = self.sample_mask(images.shape[0], images.shape[-2:])
        mask = mask.to(device=images.device, dtype=images.dtype)
        unit = self.mask_generator.unit
        features = self.encoder(images, upsample_mask(mask, unit // self.encoder.patch_size))
        pred = self.decoder(features)
        with torch.no_grad():
            target = self.target(images)
        patch_mask = upsample_mask(mask, unit // self.patch_size).flatten(1)
        return {"loss": self.loss_fn(pred, target, patch_mask), "pred": pred, "target": target, "mask": patch_mask}
