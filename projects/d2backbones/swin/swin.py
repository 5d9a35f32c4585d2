"""Swin Transformer (Liu et al., ICCV 2021) as a detectron2 backbone.

The network is timm's ``SwinTransformer``, built without weights for any input size.
This module adds what the official detection code (Swin-Transformer-Object-Detection,
and detectron2's ``SwinTransformer``) adds around it: a LayerNorm on every output
stage, padding of each block's map to window multiples *before* the cyclic shift,
stage freezing, activation checkpointing and the detectron2 ``Backbone`` interface
(``res2``..``res5`` at strides 4..32), the output norms, freezing and interface
shared with ConvNeXt through ``HierarchicalBackbone``. Pretrained weights come only
through the checkpointer, converted by the functions at the end of this file.
"""
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.config import CfgNode as CN
from detectron2.modeling import BACKBONE_REGISTRY
from timm.models.swin_transformer import SwinTransformer as TimmSwinTransformer
from timm.models.swin_transformer import SwinTransformerBlock, window_partition, window_reverse

from ..checkpoint import add_prefix, drop_keys, rename_keys, strip_prefixes
from ..layers import resize_rel_pos_bias_table
from ..modeling.hierarchical import BACKBONE_PREFIX, STAGE_NAMES, HierarchicalBackbone
from ..modeling.yacs_builders import build_fpn_on, size_arguments

__all__ = [
    "SWIN_SIZES",
    "SwinTransformer",
    "add_swin_config",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
    "convert_detectron2_swin_checkpoint",
    "convert_official_swin_checkpoint",
    "convert_timm_swin_checkpoint",
    "is_detectron2_swin_checkpoint",
    "is_official_swin_checkpoint",
    "is_timm_swin_checkpoint",
]

logger = logging.getLogger(__name__)

# Sizes of the paper (Sec. 3.3).
SWIN_SIZES = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "large": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}


class PadThenShiftBlock(SwinTransformerBlock):
    """timm's Swin block, with the windows laid out as in the official detection code.

    timm shifts the map, then pads it to window multiples; the detection code pads
    first and shifts the padded map, so the shifted windows (and their masks) wrap at
    the padded border. Both agree when a side is a window multiple; at other sizes
    only the second reproduces detection checkpoints, so this block overrides the
    attention step only. Shapes: (B, H, W, C) -> (B, H, W, C).
    """

    def _attn(self, x):
        _, height, width, channels = x.shape
        win_h, win_w = self.window_size
        x = F.pad(x, (0, 0, 0, -width % win_w, 0, -height % win_h))
        padded_h, padded_w = x.shape[1:3]
        shift = self.shift_size
        mask = None
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            mask = self.get_attn_mask(x)
        windows = window_partition(x, self.window_size).view(-1, self.window_area, channels)
        windows = self.attn(windows, mask=mask).view(-1, win_h, win_w, channels)
        x = window_reverse(windows, self.window_size, padded_h, padded_w)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :height, :width].contiguous()


class SwinTransformer(HierarchicalBackbone):
    """timm's Swin Transformer with a LayerNorm on each output stage.

    Input (N, 3, H, W) of any size: it is zero-padded to a multiple of the patch size,
    each block pads its map to window multiples, and each patch merging pads odd sides,
    so ``res{i}`` is (N, embed_dim * 2**(i - 2), ceil(H / 2**i), ceil(W / 2**i)).
    Parameter names: ``patch_embed.*``, ``layers.{i}.downsample.*`` (patch merging that
    opens stage i >= 1), ``layers.{i}.blocks.{j}.*`` (timm's), and ``norm{i}.*`` for
    the output norms (detectron2's and the official detection code's).
    """

    def __init__(
        self,
        pretrain_img_size=224,
        patch_size=4,
        in_chans=3,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.2,
        attn_drop_rate=0.0,
        out_features=STAGE_NAMES,
        freeze_at=0,
        use_act_checkpoint=False,
    ):
        """
        Args:
            pretrain_img_size (int): image size timm builds with; any size runs.
            patch_size (int): side of the patches of the first stage (stride of res2).
            in_chans (int): input channels.
            embed_dim (int): channels of stage 0, doubled at each later stage.
            depths, num_heads (tuple[int]): blocks and attention heads per stage (4 stages).
            window_size (int): attention window side, at every stage and input size.
            mlp_ratio, qkv_bias, attn_drop_rate: as timm's.
            drop_path_rate (float): stochastic depth of the last block, rising linearly.
            out_features (tuple[str]): any of "res2".."res5"; later stages are not built.
            freeze_at (int): as detectron2's ResNet: 0 trains everything, 1 freezes the
                patch embedding, k >= 2 it and the stages up to ``res{k}``.
            use_act_checkpoint (bool): recompute each stage's blocks in the backward pass.
        """
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"Swin has 4 stages; got depths={depths} and num_heads={num_heads}")
        num_stages = self.stages_to_build(out_features, freeze_at, stem_name="patch embedding")
        net = TimmSwinTransformer(
            img_size=pretrain_img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            # Detection keeps the window (and its shift) fixed whatever the map size.
            always_partition=True,
            strict_img_size=False,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
        )
        self.patch_embed = net.patch_embed
        self.layers = net.layers[:num_stages]
        for stage in self.layers:
            for block in stage.blocks:
                block.__class__ = PadThenShiftBlock
            stage.grad_checkpointing = use_act_checkpoint
        self.patch_size = patch_size
        self.window_size = window_size
        self.depths = tuple(depths)

        dims = [embed_dim * 2**i for i in range(4)]
        self._add_output_norms(out_features, dims, patch_size, nn.LayerNorm)
        self._freeze(freeze_at)

    def stem_and_stages(self):
        return self.patch_embed, self.layers

    def _output_of_stage(self, index, x):
        """Normed (N, H, W, C) map -> (N, C, H, W), detectron2's layout."""
        return super()._output_of_stage(index, x).permute(0, 3, 1, 2).contiguous()

    def forward(self, x):
        """
        Args:
            x (Tensor): (N, C, H, W) images.

        Returns:
            dict[str, Tensor]: ``res{i}`` of shape (N, C_i, ceil(H / 2**i), ceil(W / 2**i)).
        """
        if x.dim() != 4:
            raise ValueError(f"Swin takes (N, C, H, W) images; got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.patch_size, 0, -height % self.patch_size))
        return self._forward_stages(self.patch_embed(x))


def add_swin_config(cfg):
    """Add ``MODEL.SWIN`` (Swin-T, window 7, drop path 0.2, as the official Mask R-CNN) to a yacs config."""
    cfg.MODEL.SWIN = CN()
    cfg.MODEL.SWIN.SIZE = "tiny"
    cfg.MODEL.SWIN.WINDOW_SIZE = 7
    cfg.MODEL.SWIN.DROP_PATH_RATE = 0.2
    cfg.MODEL.SWIN.USE_ACT_CHECKPOINT = False


@BACKBONE_REGISTRY.register()
def build_swin_backbone(cfg, input_shape):
    """Swin from ``MODEL.SWIN`` (SIZE one of tiny/small/base/large), with
    ``MODEL.BACKBONE.FREEZE_AT`` and ``MODEL.RESNETS.OUT_FEATURES`` read as for ResNet."""
    return SwinTransformer(
        **size_arguments(SWIN_SIZES, cfg.MODEL.SWIN.SIZE, "MODEL.SWIN.SIZE"),
        in_chans=input_shape.channels,
        window_size=cfg.MODEL.SWIN.WINDOW_SIZE,
        drop_path_rate=cfg.MODEL.SWIN.DROP_PATH_RATE,
        out_features=tuple(cfg.MODEL.RESNETS.OUT_FEATURES),
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        use_act_checkpoint=cfg.MODEL.SWIN.USE_ACT_CHECKPOINT,
    )


@BACKBONE_REGISTRY.register()
def build_swin_fpn_backbone(cfg, input_shape):
    """Swin + detectron2's FPN (``MODEL.FPN.*``, P2-P6), as ``build_resnet_fpn_backbone``."""
    return build_fpn_on(build_swin_backbone(cfg, input_shape), cfg)


# ---- checkpoint conversion --------------------------------------------------------------
# Buffers every implementation recomputes, and the classifier of the ImageNet releases.
_BUFFER_KEYS = (r"relative_position_index$", r"attn_mask$")
_CLASSIFIER_KEYS = (r"^head\.", r"^norm\.")
# Official and detectron2 Swin merge patches at the end of stage i; timm (and we) at the
# start of stage i + 1.
_DOWNSAMPLE_AT_STAGE_END = "layers.0.downsample.reduction.weight"
# ``re.sub`` takes a function as the replacement, so the stage index can be incremented.
_DOWNSAMPLE_TO_NEXT_STAGE = (
    (r"^layers\.(\d+)\.downsample\.", lambda match: f"layers.{int(match.group(1)) + 1}.downsample."),
)


def _find_swin(model):
    if model is None:
        return None
    return next((m for m in model.modules() if isinstance(m, SwinTransformer)), None)


def _resize_bias_tables(state_dict, model):
    """Resize every relative-position bias table to the model's window (pretraining at
    384 px used window 12; detection uses 7). Without a model the tables are kept."""
    swin = _find_swin(model)
    if swin is None:
        return state_dict
    window = (swin.window_size, swin.window_size)
    resized = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_bias_table"):
            new_value = resize_rel_pos_bias_table(value, window)
            if new_value.shape != value.shape:
                logger.info("resized %s from %s to %s for window %d", key, tuple(value.shape), tuple(new_value.shape), swin.window_size)
            value = new_value
        resized[key] = value
    return resized



def is_timm_swin_checkpoint(state_dict):
    """timm's Swin keys: ``layers.{i}.blocks.*`` with patch merging opening stages 1-3."""
    return (
        "patch_embed.proj.weight" in state_dict
        and "layers.1.downsample.reduction.weight" in state_dict
        and _DOWNSAMPLE_AT_STAGE_END not in state_dict
    )


def convert_timm_swin_checkpoint(state_dict, model=None):
    """timm Swin state dict -> detector keys (``backbone.bottom_up.*``). Our backbone
    holds timm's modules, so only the classifier is dropped; bias tables are resized
    to ``model``'s window when given."""
    kept, _ = drop_keys(state_dict, _BUFFER_KEYS + _CLASSIFIER_KEYS, source="timm Swin")
    return add_prefix(_resize_bias_tables(kept, model), BACKBONE_PREFIX)


def is_official_swin_checkpoint(state_dict):
    """Official Swin release (``swin_*_patch4_window*.pth`` after unwrapping ``model``)."""
    return "patch_embed.proj.weight" in state_dict and _DOWNSAMPLE_AT_STAGE_END in state_dict


def convert_official_swin_checkpoint(state_dict, model=None):
    """Official Swin state dict -> detector keys: patch merging moves to the next stage,
    ``relative_position_index`` / ``attn_mask`` buffers and the classifier are dropped,
    and bias tables are resized to ``model``'s window when given."""
    kept, _ = drop_keys(state_dict, _BUFFER_KEYS + _CLASSIFIER_KEYS, source="official Swin")
    return add_prefix(_resize_bias_tables(rename_keys(kept, _DOWNSAMPLE_TO_NEXT_STAGE), model), BACKBONE_PREFIX)


def is_detectron2_swin_checkpoint(state_dict):
    """A detector with ``detectron2.modeling.SwinTransformer`` under ``backbone.bottom_up``
    (detectron2's ViTDet project)."""
    return BACKBONE_PREFIX + _DOWNSAMPLE_AT_STAGE_END in state_dict


def convert_detectron2_swin_checkpoint(state_dict, model=None):
    """detectron2 ViTDet-project Swin detector -> our detector keys. The backbone's patch
    merging moves to the next stage and its buffers are dropped; the pyramid and heads
    (same detectron2 modules) keep their names."""
    backbone = {k: v for k, v in state_dict.items() if k.startswith(BACKBONE_PREFIX)}
    rest = {k: v for k, v in state_dict.items() if not k.startswith(BACKBONE_PREFIX)}
    backbone, _ = drop_keys(strip_prefixes(backbone, [BACKBONE_PREFIX]), _BUFFER_KEYS, source="detectron2 Swin")
    converted = add_prefix(_resize_bias_tables(rename_keys(backbone, _DOWNSAMPLE_TO_NEXT_STAGE), model), BACKBONE_PREFIX)
    return {**rest, **converted}
