"""ViTDet backbone: numerical equivalence with detectron2's installed ViT + SimpleFeaturePyramid."""
from functools import partial

import pytest
import torch
import torch.nn as nn
from conftest import act_checkpoint_pair, max_rel_err
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling import SimpleFeaturePyramid as RefSimpleFeaturePyramid
from detectron2.modeling import ViT as RefViT
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from d2backbones.layers import Attention
from d2backbones.vitdet import SimpleFeaturePyramid, ViT, add_vitdet_config

# Windowed + global blocks, a residual conv block, rel-pos tables that are not
# zero, and a pretraining grid (64 px -> 4x4) unlike the input grid.
VIT_KWARGS = dict(
    img_size=128,
    patch_size=16,
    embed_dim=96,
    depth=4,
    num_heads=4,
    window_size=3,
    window_block_indexes=[0, 2],
    residual_block_indexes=[1],
    use_rel_pos=True,
    rel_pos_zero_init=False,
    pretrain_img_size=64,
    norm_layer=partial(nn.LayerNorm, eps=1e-6),
)
SFP_ARGS = dict(in_feature="last_feat", out_channels=32, scale_factors=(4.0, 2.0, 1.0, 0.5), norm="LN")


def build_pair(rel_pos_mode, **overrides):
    torch.manual_seed(0)
    kwargs = {**VIT_KWARGS, **overrides}
    reference = RefSimpleFeaturePyramid(RefViT(**kwargs), top_block=LastLevelMaxPool(), **SFP_ARGS)
    with torch.no_grad():
        for param in reference.parameters():
            param.add_(torch.randn_like(param) * 0.05)  # leave the init so norms/biases matter
    ours = SimpleFeaturePyramid(ViT(**kwargs, rel_pos_mode=rel_pos_mode), top_block=LastLevelMaxPool(), **SFP_ARGS)
    incompatible = ours.load_state_dict(reference.state_dict())
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    return reference.eval(), ours.eval()


@pytest.mark.parametrize("rel_pos_mode", ["fold", "mask", "blockwise", "auto"])
def test_matches_detectron2_forward(rel_pos_mode):
    reference, ours = build_pair(rel_pos_mode)
    x = torch.randn(2, 3, 112, 160)  # non-square, 7x10 tokens: windows need padding
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert list(actual) == ["p2", "p3", "p4", "p5", "p6"]
    for name in expected:
        assert actual[name].shape == expected[name].shape
        assert max_rel_err(actual[name], expected[name]) <= 1e-5, name


@pytest.mark.parametrize("rel_pos_mode", ["fold", "mask", "blockwise"])
def test_matches_detectron2_gradients(rel_pos_mode):
    reference, ours = build_pair(rel_pos_mode)
    x = torch.randn(1, 3, 96, 128)
    for model in (reference, ours):
        sum(f.square().mean() for f in model(x).values()).backward()
    ours_grads = dict(ours.named_parameters())
    for name, param in reference.named_parameters():
        assert max_rel_err(ours_grads[name].grad, param.grad) <= 1e-4, name


def test_rel_pos_table_interpolated_when_size_differs():
    # img_size 64 sizes the global tables for 4x4 tokens; the input has 7x10.
    reference, ours = build_pair("fold", img_size=64)
    assert ours.net.blocks[1].attn.rel_pos_h.shape[0] == 7
    x = torch.randn(1, 3, 112, 160)
    with torch.no_grad():
        assert max_rel_err(ours(x)["p4"], reference(x)["p4"]) <= 1e-5


def test_sdpa_attention_matches_explicit_attention():
    torch.manual_seed(0)
    attention = Attention(64, num_heads=4, use_rel_pos=True, rel_pos_zero_init=False, input_size=(6, 9))
    x = torch.randn(2, 6, 9, 64)
    q, k, v = attention.qkv(x).reshape(2, 54, 3, 4, 16).permute(2, 0, 3, 1, 4)
    rel_h, rel_w = attention._rel_pos_terms(q, (6, 9))
    logits = (q * attention.scale) @ k.transpose(-2, -1) + (rel_h[..., :, None] + rel_w[..., None, :]).reshape(2, 4, 54, 54)
    explicit = attention.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 9, 64))
    for mode in ("fold", "mask", "blockwise"):
        attention.rel_pos_mode = mode
        assert max_rel_err(attention(x), explicit) <= 1e-5, mode


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain, checkpointed = act_checkpoint_pair(partial(ViT, **VIT_KWARGS))
    x = torch.randn(1, 3, 64, 96)
    for model in (plain, checkpointed):
        model(x)["last_feat"].square().mean().backward()
    grads = dict(checkpointed.named_parameters())
    for name, param in plain.named_parameters():
        assert torch.allclose(grads[name].grad, param.grad, rtol=1e-5, atol=1e-7), name


def test_padding_constraints_apply_size_divisibility():
    pyramid = SimpleFeaturePyramid(ViT(**VIT_KWARGS), top_block=LastLevelMaxPool(), square_pad=0, **SFP_ARGS)
    assert pyramid.padding_constraints == {"size_divisibility": 32, "square_size": 0}
    assert {name: shape.stride for name, shape in pyramid.output_shape().items()} == {
        "p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64,
    }


def test_input_not_multiple_of_patch_size_is_refused():
    with pytest.raises(ValueError, match="patch_size=16"):
        ViT(**VIT_KWARGS)(torch.randn(1, 3, 100, 128))


def test_registered_in_backbone_registry():
    cfg = get_cfg()
    add_vitdet_config(cfg)
    cfg.MODEL.VIT.update(IMG_SIZE=128, EMBED_DIM=64, DEPTH=2, NUM_HEADS=2, WINDOW_SIZE=4,
                         GLOBAL_BLOCK_INDEXES=[1], OUT_CHANNELS=32, SQUARE_PAD=128)
    cfg.MODEL.BACKBONE.NAME = "build_vitdet_backbone"
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, ShapeSpec(channels=3))
    features = backbone(torch.randn(1, 3, 128, 128))
    assert {name: f.shape[-1] for name, f in features.items()} == {"p2": 32, "p3": 16, "p4": 8, "p5": 4, "p6": 2}
    assert [block.window_size for block in backbone.net.blocks] == [4, 0]
