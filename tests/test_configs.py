"""Every LazyConfig under configs/ (configs/common/ and configs/Pretrain/ excepted) loads,
builds a detector that runs, and has an optimizer and lr schedule that instantiate.

Configs are found by glob, so a new one is covered without touching this file.
Full-size models would not fit the test budget, so ViTs are shrunk first; the
full-size ViTDet backbones are checked on the meta device against detectron2's.
"""
import math
import socket
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import meta_device, num_params
from detectron2.config import LazyConfig, instantiate
from detectron2.layers.batch_norm import LayerNorm as D2LayerNorm
from detectron2.modeling import SimpleFeaturePyramid as D2SimpleFeaturePyramid
from detectron2.modeling import ViT as D2ViT
from omegaconf import DictConfig, ListConfig

from d2backbones.inference.tta import AUG_DEFAULTS
from d2backbones.layers import LayerNorm2d

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
# configs/Pretrain/ holds pretraining models, not detectors (tests/test_mae_pretrain.py).
NOT_DETECTORS = ("common", "Pretrain")
CONFIGS = sorted(
    path for path in CONFIG_ROOT.rglob("*.py") if path.relative_to(CONFIG_ROOT).parts[0] not in NOT_DETECTORS
)
CONFIG_IDS = [str(path.relative_to(CONFIG_ROOT)) for path in CONFIGS]
VITDET = CONFIG_ROOT / "ViTDet" / "COCO"

# Test inputs are at most this big; larger input settings are cut down to it.
TEST_SIZE = 128
# ViTs with more than this depth x width (the demo's 4 x 128) are cut to TINY_VIT.
MAX_TEST_VIT = 4 * 128
TINY_VIT = dict(embed_dim=64, depth=2, num_heads=2)
# RoI heads dominate a small-image forward pass: 1000 proposals through a 4conv1fc
# head, three times in a cascade, take tens of seconds on 2 CPU cores.
TEST_PROPOSALS = 50

# Hierarchical backbones (ConvNeXt, Swin): a node with four-stage ``depths`` wider than
# the demos' (stage 3 at 128 channels) is cut to TINY_HIERARCHICAL: two blocks per stage,
# so Swin still runs a window and a shifted-window block, at 16-128 channels.
MAX_TEST_HIERARCHICAL_WIDTH = 128
TINY_HIERARCHICAL = dict(depths=[2, 2, 2, 2], dims=[16, 32, 64, 128], embed_dim=16, num_heads=[1, 2, 4, 8])


def shrink_hierarchical(node):
    """Cut a ConvNeXt (``dims``) or Swin (``embed_dim``, ``num_heads``) node to TINY_HIERARCHICAL."""
    if not (isinstance(node.get("depths"), ListConfig) and len(node.depths) == 4):
        return
    stage3_width = node.dims[2] if "dims" in node else node.get("embed_dim", 0) * 4
    if stage3_width > MAX_TEST_HIERARCHICAL_WIDTH:
        node.update({key: value for key, value in TINY_HIERARCHICAL.items() if key in node or key == "depths"})


# ---- MIMDet's recipe (hustvl/MIMDet) ---------------------------------------------
# The modules after the pretrained encoder (decoder, FPN, heads) train at the base lr
# times the encoder multiplier (up to 3.5 for ViT-L), and warmup starts from lr 0.
MAX_LR_FACTOR = {"MIMDet": 3.5}
FIRST_LR_FACTOR = {"MIMDet": 0.0}


def _nodes(node):
    """All dict nodes of a config tree, ``node`` included."""
    if isinstance(node, DictConfig):
        yield node
        children = node.values()
    elif isinstance(node, ListConfig):
        children = node
    else:
        return
    for child in children:
        yield from _nodes(child)


def shrink_model(model_cfg):
    """Cut ``model_cfg`` to test size; returns the side of the largest input it takes.

    Big ViTs become TINY_VIT, input sizes (``img_size``, ``square_pad``) at most
    TEST_SIZE, proposals and detections per image at most TEST_PROPOSALS. A ViT is any node with
    integer ``embed_dim``, ``depth`` and ``num_heads``; only keys a node already
    has are changed, so any ViT-like target works.
    """
    input_size = TEST_SIZE
    for node in _nodes(model_cfg):
        is_vit = all(isinstance(node.get(key), int) for key in TINY_VIT)
        if is_vit and node.depth * node.embed_dim > MAX_TEST_VIT:
            node.update(TINY_VIT)
            if "residual_block_indexes" in node:
                node.residual_block_indexes = [i for i in node.residual_block_indexes if i < node.depth]
            # One windowed block and one global block, so both attention paths run.
            if "window_block_indexes" in node:
                node.window_block_indexes = [0]
        shrink_hierarchical(node)
        for key in ("img_size", "square_pad"):
            if isinstance(node.get(key), int) and node[key] > TEST_SIZE:
                node[key] = TEST_SIZE
        # Images larger than the square they are padded to would be cropped.
        if node.get("square_pad"):
            input_size = min(input_size, node.square_pad)
        for key, cap in (("pre_nms_topk", 4 * TEST_PROPOSALS), ("post_nms_topk", TEST_PROPOSALS)):
            if key in node:
                node[key] = [min(k, cap) for k in node[key]]
        # Every detection runs through the mask heads (one per stage in an mmdet cascade):
        # untrained LVIS heads would keep all 300 detections per image.
        if isinstance(node.get("test_topk_per_image"), int):
            node.test_topk_per_image = min(node.test_topk_per_image, TEST_PROPOSALS)
    return input_size


def load(path):
    cfg = LazyConfig.load(str(path))
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train", "test"):
        assert key in cfg, f"{path.name} has no `{key}`"
    # `--eval-only test.aug.enabled=True` works on every detector config; it is off by default.
    assert set(cfg.test.aug) == set(AUG_DEFAULTS) and cfg.test.aug.enabled is False, path.name
    return cfg


_tiny_models = {}


def tiny_model(path):
    """The shrunk model of a config in eval mode and its largest input side (built once)."""
    if path not in _tiny_models:
        model_cfg = load(path).model
        input_size = shrink_model(model_cfg)
        torch.manual_seed(0)
        _tiny_models[path] = instantiate(model_cfg).eval(), input_size
    return _tiny_models[path]


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_model_runs(path):
    model, size = tiny_model(path)
    # Not square and not a multiple of the strides, so padding is exercised.
    height, width = size - size // 4 - 4, size - size // 8 - 4
    image = torch.randint(0, 255, (3, height, width)).float()
    with torch.no_grad():
        (output,) = model([{"image": image, "height": height, "width": width}])
    assert "instances" in output
    assert output["instances"].image_size == (height, width)


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_optimizer_instantiates(path):
    cfg = load(path)
    model, _ = tiny_model(path)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    in_groups = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(in_groups) == sorted(trainable)
    base_lr = cfg.optimizer.lr * MAX_LR_FACTOR.get(path.relative_to(CONFIG_ROOT).parts[0], 1.0)
    assert all(0 < group["lr"] <= base_lr for group in optimizer.param_groups)


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_lr_multiplier(path):
    cfg = load(path)
    max_iter = cfg.train.max_iter
    scheduler = cfg.lr_multiplier.get("scheduler", {})
    if "num_updates" in scheduler:
        assert scheduler.num_updates == max_iter
    multiplier = instantiate(cfg.lr_multiplier)
    first, last = multiplier(0.0), multiplier((max_iter - 1) / max_iter)
    if path.relative_to(CONFIG_ROOT).parts[0] == "demo":
        assert 0 < first and 0 < last
    else:
        assert first == pytest.approx(FIRST_LR_FACTOR.get(path.relative_to(CONFIG_ROOT).parts[0], 0.001))
        assert last == pytest.approx(0.01)


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_mappers_instantiate(path):
    dataloader = load(path).dataloader
    for split in ("train", "test"):
        assert instantiate(dataloader[split].mapper) is not None


class NetworkUsed(AssertionError):
    """Raised by the ``no_network`` guard on any connection or name lookup."""


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every connection and name lookup made through Python's socket module (what
    urllib, torch.hub, requests and huggingface_hub use); returns the attempts made."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise NetworkUsed(f"network access: {args}")

    for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"),
                        (socket, "create_connection"), (socket, "getaddrinfo")):
        monkeypatch.setattr(owner, name, refuse)
    return attempts


def test_network_guard_refuses_connections(no_network, tmp_path):
    with pytest.raises(NetworkUsed), socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))
    with pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(NetworkUsed):
        urllib.request.urlopen("http://example.com/weights.pth")
    with pytest.raises(NetworkUsed):
        torch.hub.load_state_dict_from_url("https://example.com/weights.pth", model_dir=str(tmp_path))
    assert len(no_network) == 4


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_construction_downloads_nothing(path, no_network):
    """Loading a config and building its full-size model (on the meta device) opens no
    connection: weights come only from ``train.init_checkpoint``, read by the checkpointer."""
    cfg = load(path)
    with meta_device():
        instantiate(cfg.model)
    assert no_network == []


def _d2_equivalent(backbone_cfg):
    """detectron2's ViT + SimpleFeaturePyramid config with the same arguments."""
    d2_cfg = backbone_cfg.copy()
    d2_cfg._target_ = D2SimpleFeaturePyramid
    d2_cfg.net._target_ = D2ViT
    d2_cfg.net.pop("rel_pos_mode", None)
    return d2_cfg


@pytest.mark.parametrize(
    "name", ["mask_rcnn_vitdet_b_100ep", "mask_rcnn_vitdet_l_100ep", "mask_rcnn_vitdet_h_75ep"]
)
def test_full_size_backbone_matches_detectron2(name):
    backbone_cfg = load(VITDET / f"{name}.py").model.backbone
    with meta_device():
        ours = instantiate(backbone_cfg)
        theirs = instantiate(_d2_equivalent(backbone_cfg))
    # Same keys and shapes: detectron2's ViTDet checkpoints load into ours as they are.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    assert num_params(ours.net) == num_params(theirs.net)
    assert num_params(ours) == num_params(theirs)


def test_vit_b_size():
    """ViT-B/16 without cls token and head, plus ViTDet's rel-pos tables: ~85.8M."""
    with meta_device():
        net = instantiate(load(VITDET / "mask_rcnn_vitdet_b_100ep.py").model.backbone.net)
    assert math.isclose(num_params(net), 85.8e6, rel_tol=0.01)


@pytest.mark.parametrize(
    "name, max_iter, milestones",
    [
        ("mask_rcnn_vitdet_b_100ep", 184375, [163889, 177546]),
        ("cascade_mask_rcnn_vitdet_l_100ep", 184375, [163889, 177546]),
        # detectron2's ViTDet-H: the 100-epoch numbers times 3 // 4.
        ("mask_rcnn_vitdet_h_75ep", 138281, [122916, 133159]),
        ("cascade_mask_rcnn_vitdet_h_75ep", 138281, [122916, 133159]),
    ],
)
def test_vitdet_schedule(name, max_iter, milestones):
    cfg = load(VITDET / f"{name}.py")
    assert cfg.train.max_iter == max_iter
    assert list(cfg.lr_multiplier.scheduler.milestones) == milestones
    assert cfg.lr_multiplier.warmup_length * max_iter == pytest.approx(250)



@pytest.mark.parametrize(
    "name, head_path",
    [("mask_rcnn_vitdet_b_100ep", ("box_head",)), ("mask_rcnn_vitdet_b_100ep", ("mask_head",)),
     ("cascade_mask_rcnn_vitdet_b_100ep", ("box_heads", 2))],
)
def test_vitdet_head_norm_is_detectron2_ln(name, head_path):
    """The ViTDet heads' LayerNorm2d (one fused kernel, less kept for backward) has the
    keys of detectron2's "LN" and gives its outputs and gradients."""
    head_cfg = load(VITDET / f"{name}.py").model.roi_heads
    for key in head_path:
        head_cfg = head_cfg[key]
    d2_cfg = head_cfg.copy()
    d2_cfg.conv_norm = "LN"
    if "num_classes" in head_cfg:  # the mask head's, an interpolation outside its detector
        head_cfg.num_classes = d2_cfg.num_classes = 3
    torch.manual_seed(0)
    ours, theirs = instantiate(head_cfg), instantiate(d2_cfg)
    for module in theirs.modules():  # non-trivial affine LN parameters, copied to ours
        if isinstance(module, D2LayerNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    ours.load_state_dict(theirs.state_dict())  # strict: the same keys
    assert sum(isinstance(m, LayerNorm2d) for m in ours.modules()) == 4
    assert not any(isinstance(m, D2LayerNorm) for m in ours.modules())
    shape = head_cfg.input_shape
    x = torch.randn(6, shape.channels, shape.height, shape.width, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for side, head in (("ours", ours), ("detectron2", theirs)):
        head.zero_grad()
        inputs = x.clone().requires_grad_()
        layers = head.layers if hasattr(head, "layers") else head
        out = layers(inputs)
        out.square().sum().backward()
        outputs[side] = (out, inputs.grad, [p.grad for p in head.parameters()])
    (out, grad_in, grads), (ref, ref_in, ref_grads) = outputs["ours"], outputs["detectron2"]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_in, ref_in, rtol=1e-4, atol=1e-4)
    for mine, theirs_grad in zip(grads, ref_grads):
        torch.testing.assert_close(mine, theirs_grad, rtol=1e-4, atol=1e-3)
