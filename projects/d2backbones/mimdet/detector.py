"""Detector-level pieces of MIMDet: the meta-architecture that tells the backbone where
the padding is, the reference's synchronised BatchNorm, and the yacs entry point."""
import torch
import torch.nn as nn
from detectron2.config import CfgNode as CN
from detectron2.layers import NaiveSyncBatchNorm
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.utils import comm

from ..modeling.yacs_builders import build_fpn_on
from .mimdet import MIMDetBackbone, MIMDetDecoder, MIMDetEncoder

__all__ = ["PaddingAwareRCNN", "add_mimdet_config", "build_mimdet_fpn_backbone", "sync_batch_norm"]


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


def add_mimdet_config(cfg):
    """Add ``MODEL.MIMDET`` (the reference's ViT-B settings) to a yacs config."""
    cfg.MODEL.MIMDET = CN()
    cfg.MODEL.MIMDET.IMG_SIZE = 800
    cfg.MODEL.MIMDET.EMBED_DIM = 768
    cfg.MODEL.MIMDET.DEPTH = 12
    cfg.MODEL.MIMDET.NUM_HEADS = 12
    cfg.MODEL.MIMDET.DROP_PATH_RATE = 0.1
    cfg.MODEL.MIMDET.DECODER_EMBED_DIM = 512
    cfg.MODEL.MIMDET.DECODER_DEPTH = 4
    cfg.MODEL.MIMDET.DECODER_NUM_HEADS = 16
    cfg.MODEL.MIMDET.UNKEPT_TOKEN_FILL = "conv_feature"
    cfg.MODEL.MIMDET.SAMPLE_RATIO = 0.5
    cfg.MODEL.MIMDET.TEST_SAMPLE_RATIO = 1.0
    cfg.MODEL.MIMDET.USE_ACT_CHECKPOINT = False


@BACKBONE_REGISTRY.register()
def build_mimdet_fpn_backbone(cfg, input_shape):
    """MIMDet (c2-c5) + FPN (P2-P6) from ``cfg.MODEL.MIMDET`` and ``cfg.MODEL.FPN``.

    Use with ``MODEL.META_ARCHITECTURE = "PaddingAwareRCNN"`` for padding-aware sampling.
    """
    mim = cfg.MODEL.MIMDET
    bottom_up = MIMDetBackbone(
        encoder=MIMDetEncoder(
            img_size=mim.IMG_SIZE,
            in_chans=input_shape.channels,
            embed_dim=mim.EMBED_DIM,
            depth=mim.DEPTH,
            num_heads=mim.NUM_HEADS,
            drop_path_rate=mim.DROP_PATH_RATE,
            use_act_checkpoint=mim.USE_ACT_CHECKPOINT,
            stem_act_checkpoint=mim.USE_ACT_CHECKPOINT,
        ),
        decoder=MIMDetDecoder(
            img_size=mim.IMG_SIZE,
            embed_dim=mim.EMBED_DIM,
            decoder_embed_dim=mim.DECODER_EMBED_DIM,
            depth=mim.DECODER_DEPTH,
            num_heads=mim.DECODER_NUM_HEADS,
            unkept_token_fill=mim.UNKEPT_TOKEN_FILL,
            use_act_checkpoint=mim.USE_ACT_CHECKPOINT,
        ),
        sample_ratio=mim.SAMPLE_RATIO,
        test_sample_ratio=mim.TEST_SAMPLE_RATIO,
    )
    return build_fpn_on(bottom_up, cfg, in_features=["c2", "c3", "c4", "c5"])
