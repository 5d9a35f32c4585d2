"""The detectron2 side of a pretraining model: batched dicts in, a loss dict out.

``tools/train_net.py`` trains a pretraining method like any detector. Its model
takes the mapper's ``list[dict]`` (each ``"image"`` a (C, H, W) uint8 tensor in
``input_format`` channel order) and, in training mode, returns a dict of losses.
:class:`ImagePretrainer` does that part once; a method subclasses it and writes
``forward_images(images)`` on normalised (B, C, H, W) RGB tensors. It keeps no
parameters of its own, so a method's state dict holds exactly the method's names
(MAE's, for :class:`~.mae.MaskedAutoencoderViT`).
"""
import torch
import torch.nn as nn

__all__ = ["IMAGENET_PIXEL_MEAN", "IMAGENET_PIXEL_STD", "ImagePretrainer"]

# torchvision's ImageNet normalisation, as MAE applies it, on the 0-255 scale, RGB order.
IMAGENET_PIXEL_MEAN = (123.675, 116.28, 103.53)
IMAGENET_PIXEL_STD = (58.395, 57.12, 57.375)
INPUT_FORMATS = ("RGB", "BGR")


class ImagePretrainer(nn.Module):
    """Base of the pretraining models: stacking, channel order and normalisation.

    Attributes:
        loss_name (str): key of the loss in the training-mode output.
        backbone_prefix (str): state-dict prefix of the weights an initial checkpoint
            must provide (the checkpoint loader refuses a load that gives them none);
            "" because the whole model is what is being pretrained.
    """

    loss_name = "loss"
    backbone_prefix = ""

    def __init__(self, pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD, input_format="BGR"):
        """
        Args:
            pixel_mean, pixel_std (tuple[float]): per channel, RGB order, 0-255 scale.
            input_format (str): channel order of the mapper's images, "RGB" or "BGR".
        """
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self.input_format = input_format
        # Not in the state dict: a checkpoint holds the method's own names only.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess(self, batched_inputs):
        """list of {"image": (C, H, W) uint8} -> (B, C, H, W) float, RGB, normalised."""
        sizes = {tuple(x["image"].shape[-2:]) for x in batched_inputs}
        if len(sizes) != 1:
            raise ValueError(f"a pretraining batch needs images of one size, got {sorted(sizes)}: "
                             "crop to a fixed size in the mapper (MAEPretrainMapper does)")
        images = torch.stack([x["image"] for x in batched_inputs]).to(self.device, non_blocking=True).float()
        if self.input_format == "BGR":
            images = images.flip(1)
        return (images - self.pixel_mean) / self.pixel_std

    def forward_images(self, images):
        """Normalised (B, C, H, W) RGB -> dict with at least ``"loss"``."""
        raise NotImplementedError

    def forward(self, batched_inputs):
        """Training mode: ``{loss_name: loss}``; eval mode: all of ``forward_images``'s outputs."""
        outputs = self.forward_images(self.preprocess(batched_inputs))
        if self.training:
            return {self.loss_name: outputs["loss"]}
        return outputs
