"""yacs-config entry point: ``MODEL.BACKBONE.NAME = "build_mimdet_fpn_backbone"``.

LazyConfig users instantiate the classes directly (see ``configs/MIMDet``); this
registers the same model for yacs configs.
"""
from detectron2.config import CfgNode as CN
from detectron2.modeling import BACKBONE_REGISTRY

from ..modeling.yacs_builders import build_fpn_on
from .backbone import MIMDetBackbone, MIMDetDecoder, MIMDetEncoder

__all__ = ["add_mimdet_config", "build_mimdet_fpn_backbone"]


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
