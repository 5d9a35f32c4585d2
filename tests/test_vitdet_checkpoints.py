"""ViTDet checkpoints: model-zoo .pkl and MAE .pth load through DetectionCheckpointer,
and the layer-wise lr decay puts every parameter in the right group."""
import pickle
from functools import partial

import pytest
import torch
from detectron2 import model_zoo
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate
from detectron2.solver.build import get_default_optimizer_params

from conftest import RecordingCheckpointer, vit_block_state
from d2backbones.vitdet import vit_lr_decay_rate

OUR_MODEL_CONFIG = "configs/common/models/mask_rcnn_vitdet.py"
DEPTH = 2


def shrink(model_cfg, embed_dim, depth=DEPTH, num_heads=2):
    net = model_cfg.backbone.net
    net.update(embed_dim=embed_dim, depth=depth, num_heads=num_heads, img_size=128, window_block_indexes=[0])
    model_cfg.backbone.square_pad = 128
    return model_cfg


def reference_detector(embed_dim):
    cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py")
    torch.manual_seed(0)
    return instantiate(shrink(cfg.model, embed_dim))


def our_detector(embed_dim):
    cfg = LazyConfig.load(OUR_MODEL_CONFIG)
    torch.manual_seed(1)
    return instantiate(shrink(cfg.model, embed_dim))


def load_and_report(model, path):
    """Load through DetectionCheckpointer as train.init_checkpoint would; return (missing, unexpected)."""
    checkpointer = RecordingCheckpointer(model)
    checkpointer.load(path)
    return set(checkpointer.incompatible.missing_keys), set(checkpointer.incompatible.unexpected_keys)


def test_model_zoo_pkl_loads_with_no_missing_or_unexpected_keys(tmp_path):
    reference = reference_detector(embed_dim=64)
    zoo_file = tmp_path / "model_final_tiny.pkl"
    with open(zoo_file, "wb") as f:
        pickle.dump(
            {
                "model": {k: v.numpy() for k, v in reference.state_dict().items()},
                "__author__": "Detectron2 Model Zoo",
                "matching_heuristics": True,
            },
            f,
        )
    ours = our_detector(embed_dim=64)
    missing, unexpected = load_and_report(ours, str(zoo_file))
    assert missing == set() and unexpected == set()
    ours_state = ours.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours_state[key], value), key


def mae_state_dict(embed_dim=768, depth=DEPTH):
    """Keys and shapes of an MAE ViT-B/16 encoder checkpoint (``mae_pretrain_vit_base.pth``)."""
    torch.manual_seed(2)
    state = {
        "cls_token": torch.randn(1, 1, embed_dim),
        "pos_embed": torch.randn(1, 197, embed_dim),
        "patch_embed.proj.weight": torch.randn(embed_dim, 3, 16, 16),
        "patch_embed.proj.bias": torch.randn(embed_dim),
        "norm.weight": torch.randn(embed_dim),
        "norm.bias": torch.randn(embed_dim),
    }
    for i in range(depth):
        state.update(vit_block_state(f"blocks.{i}.", embed_dim))
    return state


def test_mae_pth_initialises_every_vit_weight(tmp_path):
    mae = mae_state_dict()
    path = tmp_path / "mae_pretrain_vit_base.pth"
    torch.save({"model": mae}, path)
    cfg = LazyConfig.load(OUR_MODEL_CONFIG)
    ours = instantiate(shrink(cfg.model, embed_dim=768, num_heads=12))
    missing, unexpected = load_and_report(ours, f"{path}?matching_heuristics=True")

    net = ours.backbone.net
    state = net.state_dict()
    for key, value in mae.items():
        if key in state:
            assert torch.equal(state[key], value), key
    # Every ViT weight came from the file, except the rel-pos tables MAE has no
    # counterpart for (zero-initialised, as in ViTDet).
    backbone_missing = {k for k in missing if k.startswith("backbone.net.")}
    assert backbone_missing == {
        f"backbone.net.blocks.{i}.attn.{table}" for i in range(DEPTH) for table in ("rel_pos_h", "rel_pos_w")
    }
    # Only the MAE parts a detector has no use for are left over.
    assert unexpected == {"cls_token", "norm.weight", "norm.bias"}
    # The 14x14 grid of the 224-px pretraining is kept and resized in the forward pass.
    assert net.pos_embed.shape == (1, 197, 768)
    features = ours.backbone(torch.randn(1, 3, 128, 128))
    assert features["p4"].shape == (1, 256, 8, 8)


def test_layer_wise_lr_decay_groups():
    cfg = LazyConfig.load(OUR_MODEL_CONFIG)
    model = instantiate(shrink(cfg.model, embed_dim=64, depth=4))
    base_lr, rate, depth = 1e-4, 0.7, 4
    groups = get_default_optimizer_params(
        model, base_lr=base_lr, lr_factor_func=partial(vit_lr_decay_rate, num_layers=depth, lr_decay_rate=rate)
    )
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    for name, param in model.named_parameters():
        if ".pos_embed" in name or ".patch_embed." in name:
            layer_id = 0
        elif ".blocks." in name:
            layer_id = int(name.split(".blocks.")[1].split(".")[0]) + 1
        else:
            layer_id = depth + 1
        assert lr_of[id(param)] == pytest.approx(base_lr * rate ** (depth + 1 - layer_id)), name
        # detectron2's own rule is the oracle.
        assert lr_of[id(param)] == pytest.approx(
            base_lr * get_vit_lr_decay_rate(name, lr_decay_rate=rate, num_layers=depth)
        ), name
    assert lr_of[id(model.backbone.net.patch_embed.proj.weight)] == pytest.approx(base_lr * rate**5)
    assert lr_of[id(model.backbone.net.blocks[3].mlp.fc1.weight)] == pytest.approx(base_lr * rate)
    assert lr_of[id(model.roi_heads.box_predictor.cls_score.weight)] == pytest.approx(base_lr)
