"""ConvNeXt backbone: shapes at odd sizes, equivalence with timm, checkpoint formats,
layer-wise lr decay, freezing / checkpointing / drop path, the yacs builder. (Detector
sizes and a short training run: tests/test_families.py.)"""
import re
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import BACKBONE, OUTPUT_NORMS, act_checkpoint_pair, detector_backbone, feature_grads, max_rel_err
from conftest import load_classification_weights, num_params, saved_and_read_back, yacs_fpn_backbone
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from timm.models.convnext import ConvNeXt as TimmConvNeXt

from d2backbones.checkpoint import rename_keys, strip_prefixes
from d2backbones.convnext import (
    ConvNeXt,
    add_convnext_config,
    convert_official_convnext_checkpoint,
    convert_timm_convnext_checkpoint,
    convnext_lr_decay_rate,
    is_official_convnext_checkpoint,
    is_timm_convnext_checkpoint,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = dict(depths=(1, 1, 3, 1), dims=(16, 32, 64, 128))


def tiny_detector_config():
    """The ConvNeXt-T Mask R-CNN config with a tiny ConvNeXt."""
    cfg = LazyConfig.load(str(CONFIGS / "ConvNeXt/COCO/mask_rcnn_convnext_t_3x.py"))
    cfg.model.backbone.bottom_up.update(TINY, drop_path_rate=0.0)
    return cfg


def test_shapes_and_strides_at_an_odd_size():
    net = ConvNeXt(**TINY).eval()
    with torch.no_grad():
        features = net(torch.randn(1, 3, 200, 328))
    # Padded to 224 x 352, the next multiples of 32.
    assert {k: tuple(v.shape) for k, v in features.items()} == {
        "res2": (1, 16, 56, 88), "res3": (1, 32, 28, 44), "res4": (1, 64, 14, 22), "res5": (1, 128, 7, 11),
    }
    assert net.output_shape() == {
        f"res{i}": ShapeSpec(channels=TINY["dims"][i - 2], stride=2**i) for i in range(2, 6)
    }
    assert net.padding_constraints == {"size_divisibility": 32}
    # Each output stage is LayerNorm-ed over channels.
    assert features["res3"].mean(1).abs().max() < 1e-4


def test_later_stages_are_not_built():
    net = ConvNeXt(**TINY, out_features=("res2", "res3"))
    assert len(net.stages) == 2 and not hasattr(net, "norm2")
    assert set(net(torch.randn(1, 3, 64, 64))) == {"res2", "res3"}


def timm_state_dict():
    torch.manual_seed(0)
    return TimmConvNeXt(**TINY, num_classes=10, ls_init_value=0.5).state_dict()


def official_layout(timm_sd):
    """The timm state dict in the official release's layout (what the converter undoes)."""
    rules = (
        (r"^stem\.", "downsample_layers.0."),
        (r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1."),
        (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2."),
        (r"\.conv_dw\.", ".dwconv."),
        (r"\.mlp\.fc1\.", ".pwconv1."),
        (r"\.mlp\.fc2\.", ".pwconv2."),
        (r"^head\.fc\.", "head."),
        (r"^head\.norm\.", "norm."),
    )
    return rename_keys(timm_sd, rules)


def test_timm_weights_give_timm_features():
    timm_sd = timm_state_dict()
    assert is_timm_convnext_checkpoint(timm_sd) and not is_official_convnext_checkpoint(timm_sd)
    converted = convert_timm_convnext_checkpoint(timm_sd)
    net = ConvNeXt(**TINY).eval()
    result = net.load_state_dict(strip_prefixes(converted, [BACKBONE]), strict=False)
    assert not result.unexpected_keys
    # Only the detection-specific output norms are new (as in the official detection code).
    assert {BACKBONE + k for k in result.missing_keys} == OUTPUT_NORMS
    for i in range(4):
        getattr(net, f"norm{i}").weight.data.uniform_(0.5, 1.5)

    reference = TimmConvNeXt(**TINY, num_classes=10)
    reference.load_state_dict(timm_sd)
    image = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        ours = net(image)
        stages = reference.eval().forward_intermediates(image, intermediates_only=True)
    for i, stage in enumerate(stages):
        assert max_rel_err(ours[f"res{i + 2}"], getattr(net, f"norm{i}")(stage)) <= 1e-5


@pytest.fixture(scope="module")
def tiny_detector():
    torch.manual_seed(0)
    return detector_backbone(tiny_detector_config().model)


@pytest.mark.parametrize("fmt", ["timm", "official"])
def test_checkpoint_files_load_into_the_detector(fmt, tiny_detector, tmp_path):
    timm_sd = timm_state_dict()
    if fmt == "timm":
        file_content, is_format, convert = timm_sd, is_timm_convnext_checkpoint, convert_timm_convnext_checkpoint
    else:
        file_content = {"model": official_layout(timm_sd)}
        is_format, convert = is_official_convnext_checkpoint, convert_official_convnext_checkpoint
    state_dict = saved_and_read_back(file_content, tmp_path / "ckpt.pth")
    assert is_format(state_dict)

    loaded = load_classification_weights(tiny_detector, convert(state_dict, tiny_detector))
    assert torch.equal(loaded[BACKBONE + "stages.2.blocks.1.mlp.fc1.weight"], timm_sd["stages.2.blocks.1.mlp.fc1.weight"])
    assert torch.equal(loaded[BACKBONE + "stages.3.downsample.1.weight"], timm_sd["stages.3.downsample.1.weight"])


def test_converters_skip_the_classifier(caplog):
    with caplog.at_level("INFO"):
        converted = convert_official_convnext_checkpoint(official_layout(timm_state_dict()))
    assert not any(re.match(rf"{BACKBONE}(head|norm)\.", k) for k in converted)
    assert "head.weight" in caplog.text and "norm.weight" in caplog.text


@pytest.mark.parametrize(
    "name, layer_id",
    [
        ("stem.0.weight", 0),
        ("stages.0.blocks.2.mlp.fc1.weight", 1),
        ("stages.1.downsample.1.weight", 2),
        ("stages.1.blocks.0.gamma", 2),
        ("stages.2.downsample.0.weight", 3),
        ("stages.2.blocks.2.conv_dw.weight", 3),
        ("stages.2.blocks.3.conv_dw.weight", 4),
        ("stages.2.blocks.8.norm.bias", 5),
        ("stages.3.downsample.1.weight", 6),
        ("stages.3.blocks.2.mlp.fc2.bias", 6),
        ("norm3.weight", 7),
    ],
)
def test_layer_decay_follows_the_official_rule(name, layer_id):
    """ConvNeXt-T with 6 layer ids (official Mask R-CNN config): factor 0.95 ** (7 - id)."""
    factor = convnext_lr_decay_rate(BACKBONE + name, lr_decay_rate=0.95, num_layers=6)
    assert factor == pytest.approx(0.95 ** (7 - layer_id))


def test_layer_decay_groups_of_a_27_block_stage():
    names = [f"{BACKBONE}stages.2.blocks.{j}.mlp.fc1.weight" for j in range(27)]
    factors = {round(convnext_lr_decay_rate(n, lr_decay_rate=0.7, num_layers=12), 9) for n in names}
    # Three blocks per layer id: ids 3..11.
    assert factors == {round(0.7 ** (13 - i), 9) for i in range(3, 12)}
    for other in ("backbone.fpn_lateral2.weight", "roi_heads.box_head.fc1.weight", "proposal_generator.x"):
        assert convnext_lr_decay_rate(other, lr_decay_rate=0.7, num_layers=12) == 1.0


def test_optimizer_groups_of_the_config(tiny_detector):
    cfg = tiny_detector_config()
    cfg.optimizer.params.model = tiny_detector
    optimizer = instantiate(cfg.optimizer)
    lrs = {round(group["lr"] / cfg.optimizer.lr, 6) for group in optimizer.param_groups}
    # Tiny stage 3 has 3 blocks: ids 0..3 and 6 in ConvNeXt, 7 for the rest (norms, FPN).
    assert lrs == {round(0.95 ** (7 - i), 6) for i in (0, 1, 2, 3, 6, 7)}
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(tiny_detector.backbone.bottom_up.stages[0].blocks[0].gamma) in no_decay


def test_frozen_stages_stay_frozen_and_in_eval_mode():
    net = ConvNeXt(**TINY, freeze_at=2, drop_path_rate=0.2).train()
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in net.named_parameters() if n.startswith(("stem.", "stages.0."))}
    assert not net.stages[0].training and net.stages[1].training


def test_drop_path_and_activation_checkpointing():
    torch.manual_seed(0)
    net = ConvNeXt(**TINY, drop_path_rate=0.3)
    assert net.stages[3].blocks[0].drop_path.drop_prob == pytest.approx(0.3)
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        net.train()
        assert not torch.equal(net(image)["res5"], net(image)["res5"])
        net.eval()
        assert torch.equal(net(image)["res5"], net(image)["res5"])

    plain, checkpointed = act_checkpoint_pair(partial(ConvNeXt, **TINY))
    assert all(stage.grad_checkpointing for stage in checkpointed.stages)
    grads = feature_grads((plain, checkpointed), image, "stages.2.blocks.0.mlp.fc1.weight")
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="4 stages"):
        ConvNeXt(depths=(1, 1, 1), dims=(8, 16, 32))
    with pytest.raises(ValueError, match="res6"):
        ConvNeXt(**TINY, out_features=("res6",))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ConvNeXt(**TINY)(torch.randn(3, 32, 32))


def test_registered_yacs_builder():
    backbone = yacs_fpn_backbone(add_convnext_config, "build_convnext_fpn_backbone")
    assert isinstance(backbone.bottom_up, ConvNeXt)
    assert {k: v.stride for k, v in backbone.output_shape().items()} == {f"p{i}": 2**i for i in range(2, 7)}
    assert num_params(backbone.bottom_up) == pytest.approx(27.8e6, rel=0.01)
