"""Detector-level pieces of MIMDet: the meta-architecture that tells the backbone where
the padding is, and the reference's synchronised BatchNorm."""
import torch
import torch.nn as nn
from detectron2.layers import NaiveSyncBatchNorm
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.utils import comm

__all__ = ["PaddingAwareRCNN", "sync_batch_norm"]


@META_ARCH_REGISTRY.register()
class PaddingAwareRCNN(GeneralizedRCNN):
    """detectron2's ``GeneralizedRCNN``, plus one step: after padding a batch, it gives
    every backbone module that has ``set_image_sizes`` the unpadded image sizes.

    detectron2 hands the backbone only the padded tensor, but MIMDet drops the
    tokens over padding first when it samples. Same parameters and state-dict keys as
    ``GeneralizedRCNN``.
    """

    def preprocess_image(self, batched_inputs):
        images = super().preprocess_image(batched_inputs)
        for module in self.backbone.modules():
            if hasattr(module, "set_image_sizes"):
                module.set_image_sizes(images.image_sizes)
        return images


def sync_batch_norm(num_channels):
    """The reference's "SyncBN" for the FPN, in a form that also runs on CPU.

    torch's ``nn.SyncBatchNorm`` (the reference's choice) on multi-process CUDA runs;
    otherwise detectron2's ``NaiveSyncBatchNorm``, which is plain BatchNorm in one
    process and synchronises over gloo on CPU, where torch's refuses to run. Both have
    the same parameters and buffers, so checkpoints move between them.
    """
    if comm.get_world_size() > 1 and torch.cuda.is_available():
        return nn.SyncBatchNorm(num_channels)
    return NaiveSyncBatchNorm(num_channels)
