"""yacs-config entry point: ``MODEL.BACKBONE.NAME = "build_vitdet_backbone"``.

LazyConfig users instantiate :class:`ViT` and :class:`SimpleFeaturePyramid`
directly (see ``configs/``); this registers the same model for yacs configs.
"""
from functools import partial

import torch.nn as nn
from detectron2.config import CfgNode as CN
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from .simple_feature_pyramid import SimpleFeaturePyramid
from .vit import ViT


def add_vitdet_config(cfg):
    """Add ``MODEL.VIT`` (ViT-B defaults of the ViTDet paper) to a yacs config."""
    cfg.MODEL.VIT = CN()
    cfg.MODEL.VIT.IMG_SIZE = 1024
    cfg.MODEL.VIT.PATCH_SIZE = 16
    cfg.MODEL.VIT.EMBED_DIM = 768
    cfg.MODEL.VIT.DEPTH = 12
    cfg.MODEL.VIT.NUM_HEADS = 12
    cfg.MODEL.VIT.DROP_PATH_RATE = 0.1
    cfg.MODEL.VIT.WINDOW_SIZE = 14
    cfg.MODEL.VIT.GLOBAL_BLOCK_INDEXES = [2, 5, 8, 11]
    cfg.MODEL.VIT.USE_ACT_CHECKPOINT = False
    cfg.MODEL.VIT.OUT_CHANNELS = 256
    cfg.MODEL.VIT.SQUARE_PAD = 1024


@BACKBONE_REGISTRY.register()
def build_vitdet_backbone(cfg, input_shape):
    """ViT + simple feature pyramid (P2-P6) from ``cfg.MODEL.VIT``."""
    vit_cfg = cfg.MODEL.VIT
    net = ViT(
        img_size=vit_cfg.IMG_SIZE,
        patch_size=vit_cfg.PATCH_SIZE,
        in_chans=input_shape.channels,
        embed_dim=vit_cfg.EMBED_DIM,
        depth=vit_cfg.DEPTH,
        num_heads=vit_cfg.NUM_HEADS,
        drop_path_rate=vit_cfg.DROP_PATH_RATE,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        window_size=vit_cfg.WINDOW_SIZE,
        window_block_indexes=[i for i in range(vit_cfg.DEPTH) if i not in vit_cfg.GLOBAL_BLOCK_INDEXES],
        use_rel_pos=True,
        use_act_checkpoint=vit_cfg.USE_ACT_CHECKPOINT,
    )
    return SimpleFeaturePyramid(
        net,
        in_feature="last_feat",
        out_channels=vit_cfg.OUT_CHANNELS,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        top_block=LastLevelMaxPool(),
        norm="LN",
        square_pad=vit_cfg.SQUARE_PAD,
    )
