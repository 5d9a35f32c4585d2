"""Swin backbone: equivalence with detectron2's SwinTransformer at odd sizes, checkpoint
formats (timm, official, detectron2 ViTDet project), bias-table resizing, layer-wise lr
decay, freezing / checkpointing, the yacs builder. (Detector sizes and a short training
run: tests/test_families.py.)"""
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import BACKBONE, OUTPUT_NORMS, act_checkpoint_pair, detector_backbone, feature_grads, max_rel_err
from conftest import load_classification_weights, num_params, saved_and_read_back, yacs_fpn_backbone
from detectron2.config import LazyConfig
from detectron2.layers import ShapeSpec
from detectron2.modeling import SwinTransformer as D2SwinTransformer
from timm.layers import resize_rel_pos_bias_table_simple
from timm.models.swin_transformer import SwinTransformer as TimmSwinTransformer

from d2backbones.checkpoint import add_prefix, strip_prefixes
from d2backbones.layers import resize_rel_pos_bias_table
from d2backbones.swin import (
    SwinTransformer,
    add_swin_config,
    convert_detectron2_swin_checkpoint,
    convert_official_swin_checkpoint,
    convert_timm_swin_checkpoint,
    is_detectron2_swin_checkpoint,
    is_official_swin_checkpoint,
    is_timm_swin_checkpoint,
    swin_lr_decay_rate,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), drop_path_rate=0.0)


def detectron2_swin(window_size=7):
    torch.manual_seed(0)
    return D2SwinTransformer(**TINY, window_size=window_size).eval()


def test_matches_detectron2_at_an_odd_size():
    """200 x 328 pads every stage's windows (50x82 -> 56x84, ..., 7x11 -> 7x14) and the
    patch merging of odd maps (25x41 -> 13x21), so the shifted-window masks are checked."""
    reference = detectron2_swin()
    state_dict = convert_detectron2_swin_checkpoint(add_prefix(reference.state_dict(), BACKBONE))
    ours = SwinTransformer(**TINY).eval()
    ours.load_state_dict(strip_prefixes(state_dict, [BACKBONE]))
    image = torch.randn(1, 3, 200, 328)
    with torch.no_grad():
        expected, actual = reference(image), ours(image)
    for i in range(4):
        assert actual[f"res{i + 2}"].shape == expected[f"p{i}"].shape
        assert max_rel_err(actual[f"res{i + 2}"], expected[f"p{i}"]) <= 1e-5
    assert [tuple(actual[f"res{i}"].shape[-2:]) for i in range(2, 6)] == [(50, 82), (25, 41), (13, 21), (7, 11)]


def test_output_shape_and_padding_constraints():
    net = SwinTransformer(**TINY)
    assert net.output_shape() == {f"res{i}": ShapeSpec(channels=16 * 2 ** (i - 2), stride=2**i) for i in range(2, 6)}
    assert net.padding_constraints == {"size_divisibility": 32}
    with torch.no_grad():
        features = net.eval()(torch.randn(1, 3, 37, 61))
    assert [tuple(features[f"res{i}"].shape[-2:]) for i in range(2, 6)] == [(10, 16), (5, 8), (3, 4), (2, 2)]


def test_timm_weights_give_timm_features():
    torch.manual_seed(0)
    reference = TimmSwinTransformer(
        **TINY, window_size=4, num_classes=10, always_partition=True, strict_img_size=False
    ).eval()
    state_dict = reference.state_dict()
    assert is_timm_swin_checkpoint(state_dict) and not is_official_swin_checkpoint(state_dict)
    ours = SwinTransformer(**TINY, window_size=4).eval()
    result = ours.load_state_dict(strip_prefixes(convert_timm_swin_checkpoint(state_dict, ours), [BACKBONE]), strict=False)
    assert not result.unexpected_keys
    assert {BACKBONE + k for k in result.missing_keys} == OUTPUT_NORMS
    # At window multiples (maps of 32, 16, 8, 4) timm's and the official window layouts agree.
    image = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        stages = reference.forward_intermediates(image, intermediates_only=True)
        actual = ours(image)
    for i, stage in enumerate(stages):
        expected = getattr(ours, f"norm{i}")(stage.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert max_rel_err(actual[f"res{i + 2}"], expected) <= 1e-5


def official_file(window_size):
    """A release-style file (``swin_*_patch4_window{W}_*.pth``): detectron2's keys are the
    official ones, plus the buffers and the classifier the release also stores."""
    reference = detectron2_swin(window_size)
    state_dict = {k: v for k, v in reference.state_dict().items() if not k.startswith("norm")}
    for name, module in reference.named_modules():
        if name.endswith(".attn"):
            state_dict[f"{name}.relative_position_index"] = module.relative_position_index
    state_dict["layers.1.blocks.1.attn_mask"] = torch.zeros(4, 49, 49)
    state_dict.update({"norm.weight": torch.ones(128), "norm.bias": torch.zeros(128), "head.weight": torch.zeros(10, 128), "head.bias": torch.zeros(10)})
    return {"model": state_dict}, reference


@pytest.fixture(scope="module")
def tiny_detector():
    cfg = LazyConfig.load(str(CONFIGS / "Swin/COCO/cascade_mask_rcnn_swin_b_in21k_50ep.py"))
    cfg.model.backbone.bottom_up.update(TINY)
    torch.manual_seed(0)
    return detector_backbone(cfg.model)


@pytest.mark.parametrize("pretrain_window", [7, 12])
def test_official_files_load_into_the_detector(pretrain_window, tiny_detector, tmp_path):
    content, reference = official_file(pretrain_window)
    state_dict = saved_and_read_back(content, tmp_path / "swin.pth")
    assert is_official_swin_checkpoint(state_dict) and not is_timm_swin_checkpoint(state_dict)

    loaded = load_classification_weights(tiny_detector, convert_official_swin_checkpoint(state_dict, tiny_detector))
    # Patch merging at the end of stage 0 in the release opens stage 1 here.
    assert torch.equal(loaded[BACKBONE + "layers.1.downsample.reduction.weight"], state_dict["layers.0.downsample.reduction.weight"])
    table = loaded[BACKBONE + "layers.2.blocks.1.attn.relative_position_bias_table"]
    assert table.shape == (13 * 13, 4)
    if pretrain_window == 7:
        assert torch.equal(table, state_dict["layers.2.blocks.1.attn.relative_position_bias_table"])


@pytest.mark.parametrize("window", [(7, 7), (14, 14), (7, 12)])
def test_bias_table_resize(window):
    """A random table (window 12, 3 heads) against timm's bicubic resize of the same
    flat layout (the official Swin code's), and row/column order kept: a table that
    varies along the row offset only still does after resizing."""
    torch.manual_seed(0)
    table = torch.randn(23 * 23, 3)
    rows, cols = 2 * window[0] - 1, 2 * window[1] - 1
    resized = resize_rel_pos_bias_table(table, window)
    expected = resize_rel_pos_bias_table_simple(table, window, (rows * cols, 3))
    assert resized.shape == (rows * cols, 3)
    assert torch.allclose(resized, expected, rtol=0, atol=1e-6)

    by_row_offset = torch.randn(23, 1, 3).expand(23, 23, 3).reshape(23 * 23, 3)
    resized = resize_rel_pos_bias_table(by_row_offset, window).reshape(rows, cols, 3)
    assert torch.allclose(resized, resized[:, :1].expand(rows, cols, 3), atol=1e-6)
    assert not torch.allclose(resized[0], resized[-1], atol=1e-2)
    assert resize_rel_pos_bias_table(table, (12, 12)) is table
    with pytest.raises(ValueError, match="not \\(2 \\* S - 1\\) \\*\\* 2"):
        resize_rel_pos_bias_table(torch.zeros(10, 3), (7, 7))


def test_detectron2_vitdet_project_checkpoint_loads_with_no_key_left(tiny_detector):
    """A detector of detectron2's ViTDet project: its SwinTransformer under
    ``backbone.bottom_up.``, the FPN and heads (the same detectron2 modules as ours)."""
    reference = detectron2_swin()
    ours = tiny_detector.state_dict()
    checkpoint = {k: torch.randn_like(v, dtype=torch.float) if v.is_floating_point() else v for k, v in ours.items() if not k.startswith(BACKBONE)}
    checkpoint.update(add_prefix(reference.state_dict(), BACKBONE))
    assert is_detectron2_swin_checkpoint(checkpoint) and not is_official_swin_checkpoint(checkpoint)
    converted = convert_detectron2_swin_checkpoint(checkpoint, tiny_detector)
    result = tiny_detector.load_state_dict(converted, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(tiny_detector.state_dict()["backbone.fpn_output3.weight"], checkpoint["backbone.fpn_output3.weight"])


@pytest.mark.parametrize(
    "name, layer_id",
    [
        ("patch_embed.proj.weight", 0),
        ("layers.0.blocks.0.attn.qkv.weight", 1),
        ("layers.0.blocks.1.norm2.bias", 2),
        ("layers.1.downsample.reduction.weight", 2),
        ("layers.1.blocks.0.attn.relative_position_bias_table", 3),
        ("layers.2.blocks.5.mlp.fc1.weight", 10),
        ("layers.3.downsample.norm.weight", 10),
        ("layers.3.blocks.1.mlp.fc2.bias", 12),
        ("norm3.weight", 13),
    ],
)
def test_layer_decay_counts_blocks_across_stages(name, layer_id):
    factor = swin_lr_decay_rate(BACKBONE + name, lr_decay_rate=0.9, depths=(2, 2, 6, 2))
    assert factor == pytest.approx(0.9 ** (13 - layer_id))
    assert swin_lr_decay_rate("roi_heads.box_head.fc1.weight", lr_decay_rate=0.9, depths=(2, 2, 6, 2)) == 1.0


def test_frozen_stages_drop_path_and_activation_checkpointing():
    frozen_net = SwinTransformer(**{**TINY, "drop_path_rate": 0.2}, freeze_at=3).train()
    frozen = {n for n, p in frozen_net.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in frozen_net.named_parameters() if n.startswith(("patch_embed.", "layers.0.", "layers.1."))}
    assert not frozen_net.layers[1].training and frozen_net.layers[2].training
    assert frozen_net.layers[3].blocks[1].drop_path1.drop_prob == pytest.approx(0.2)

    torch.manual_seed(0)
    plain, checkpointed = act_checkpoint_pair(partial(SwinTransformer, **TINY))
    image = torch.randn(1, 3, 40, 56)
    grads = feature_grads((plain, checkpointed), image, "layers.2.blocks.1.attn.qkv.weight")
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="4 stages"):
        SwinTransformer(embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4))
    with pytest.raises(ValueError, match="freeze_at"):
        SwinTransformer(**TINY, freeze_at=7)


def test_registered_yacs_builder():
    backbone = yacs_fpn_backbone(add_swin_config, "build_swin_fpn_backbone")
    assert isinstance(backbone.bottom_up, SwinTransformer)
    assert num_params(backbone.bottom_up) == pytest.approx(27.5e6, rel=0.01)
