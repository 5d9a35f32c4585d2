"""MAE pretraining: masking, targets and loss, the no-leak property, MAE's parameter
names, the pretraining configs, unlabeled data, a short run through the trainer, its
checkpoint loaded into the tiny ViTDet and MIMDet detectors, and its figures."""
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import load_tool, meta_device
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog

from d2backbones.checkpoint import load_checkpoint
from d2backbones.data import MAEPretrainMapper, build_resumable_train_loader, register_unlabeled_folder
from d2backbones.data.unlabeled import list_images, parse_unlabeled_spec, register_synthetic_pools, synthetic_pool_image
from d2backbones.engine import cli
from d2backbones.engine.config import load_config
from d2backbones.layers import num_visible_tokens, random_masking, unshuffle_tokens
from d2backbones.pretrain import MaskedAutoencoderViT, build_target, masked_patch_mse, patchify, unpatchify
from d2backbones.reports.reconstructions import plot_reconstructions, reconstruction_panels
from d2backbones.vitdet.convert import fit_cls_slot

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY_PRETRAIN = ROOT / "configs" / "Pretrain" / "mae_vitdet_tiny.py"
# The MAE recipes; the other methods' configs are tested beside their models.
PRETRAIN_CONFIGS = sorted((ROOT / "configs" / "Pretrain").glob("mae_*.py"))

# facebookresearch/mae models_mae.py, MaskedAutoencoderViT.state_dict() names.
MAE_TOP_LEVEL_KEYS = {
    "cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
    "mask_token", "decoder_embed.weight", "decoder_embed.bias", "decoder_pos_embed", "decoder_norm.weight",
    "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias",
}
MAE_BLOCK_KEYS = (
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
)

# What a detector adds to the pretrained encoder, so no MAE checkpoint has it.
VITDET_DETECTION_ONLY = (r"\.attn\.rel_pos_[hw]$", r"^backbone\.net\.blocks\.\d+\.residual\.", r"^backbone\.simfp_")
# MIMDet's ConvStem replaces the patchify stem (a dense conv would see masked pixels, so it
# cannot be MAE-pretrained), and conv_feat_proj feeds it to the decoder.
MIMDET_DETECTION_ONLY = (
    r"^backbone\.bottom_up\.encoder\.patch_embed\.", r"^backbone\.bottom_up\.decoder\.conv_feat_proj\.",
    r"^backbone\.fpn_",
)


def published_mae_keys(depth, decoder_depth):
    blocks = {f"{prefix}.{i}.{key}" for prefix, n in (("blocks", depth), ("decoder_blocks", decoder_depth))
              for i in range(n) for key in MAE_BLOCK_KEYS}
    return MAE_TOP_LEVEL_KEYS | blocks


def tiny_mae(**overrides):
    kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=24,
                  decoder_depth=1, decoder_num_heads=2)
    return MaskedAutoencoderViT(**{**kwargs, **overrides})


# ---- masking ---------------------------------------------------------------------

@pytest.mark.parametrize("length", [16, 49, 256])
@pytest.mark.parametrize("ratio", [0.0, 0.4, 0.6, 0.75, 0.9])
def test_kept_token_count(length, ratio):
    kept, mask, ids_restore = random_masking(torch.randn(3, length, 4), ratio)
    expected = int(length * (1 - ratio))
    assert num_visible_tokens(length, ratio) == expected
    assert kept.shape == (3, expected, 4)
    assert mask.sum(dim=1).tolist() == [length - expected] * 3
    assert ids_restore.shape == (3, length)


def test_ids_restore_inverts_the_shuffle_and_the_mask_marks_the_removed_tokens():
    tokens = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 16, 1).expand(-1, -1, 3).contiguous()
    noise = torch.rand(2, 16)
    kept, mask, ids_restore = random_masking(tokens, 0.75, noise)
    shuffled = tokens.gather(1, noise.argsort(dim=1)[..., None].expand(-1, -1, 3))
    assert torch.equal(unshuffle_tokens(shuffled, ids_restore), tokens)
    for image in range(2):
        visible = tokens[image][mask[image] == 0][:, 0]
        assert sorted(kept[image, :, 0].tolist()) == sorted(visible.tolist())
    # Each image draws its own mask.
    assert not torch.equal(mask[0], mask[1])


def test_mask_ratio_out_of_range_is_refused():
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(torch.randn(1, 4, 2), 1.0)


# ---- targets and loss --------------------------------------------------------------

def test_patchify_round_trip_and_normalised_pixels():
    images = torch.randn(2, 3, 16, 24)
    patches = patchify(images, 8)
    assert patches.shape == (2, 6, 8 * 8 * 3)
    assert torch.equal(patches[0, 1].reshape(8, 8, 3), images[0, :, :8, 8:16].permute(1, 2, 0))
    assert torch.equal(unpatchify(patches, 8, (2, 3)), images)
    normalised = build_target("norm_pixels", 8)(images)
    assert torch.allclose(normalised.mean(-1), torch.zeros(2, 6), atol=1e-5)
    assert torch.allclose(normalised.var(-1), torch.ones(2, 6), atol=1e-3)
    with pytest.raises(ValueError, match="unknown pretraining target"):
        build_target("hog_typo", 8)


def test_loss_depends_only_on_masked_positions():
    model = tiny_mae()
    out = model.forward_images(torch.randn(2, 3, 32, 32), noise=torch.rand(2, 16))
    pred, target, mask = out["pred"].detach(), out["target"], out["mask"]
    assert torch.equal(masked_patch_mse(pred, target, mask), out["loss"].detach())
    visible, masked = (mask == 0).nonzero()[0], (mask == 1).nonzero()[0]
    changed = target.clone()
    changed[visible[0], visible[1]] += 5.0
    assert torch.equal(masked_patch_mse(pred, changed, mask), out["loss"].detach())
    changed = target.clone()
    changed[masked[0], masked[1]] += 5.0
    assert masked_patch_mse(pred, changed, mask) > out["loss"]


def test_encoder_never_sees_masked_patches():
    model = tiny_mae().eval()
    images, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    latent, mask, _ = model.forward_encoder(images, 0.75, noise)
    grid_mask = mask.reshape(2, 1, 4, 1, 4, 1).expand(-1, 3, -1, 8, -1, 8).reshape(2, 3, 32, 32)
    scrambled = torch.where(grid_mask.bool(), torch.randn_like(images) * 100, images)
    assert torch.equal(model.forward_encoder(scrambled, 0.75, noise)[0], latent)
    # A visible patch does reach it.
    nudged = torch.where(grid_mask.bool(), images, images + 1.0)
    assert not torch.allclose(model.forward_encoder(nudged, 0.75, noise)[0], latent)
    # Only the cls token and the visible tokens were encoded.
    assert latent.shape[1] == 1 + num_visible_tokens(16, 0.75)


# ---- MAE's names and checkpoints ----------------------------------------------------

def test_parameter_names_and_shapes_are_maes_vit_b():
    with meta_device():
        model = MaskedAutoencoderViT()
    state = model.state_dict()
    assert set(state) == published_mae_keys(12, 8)
    assert len(state) == 254
    assert state["pos_embed"].shape == (1, 197, 768)
    assert state["decoder_pos_embed"].shape == (1, 197, 512)
    assert state["decoder_pred.weight"].shape == (16 * 16 * 3, 512)
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad


def test_mae_full_checkpoint_resumes_pretraining_with_no_missing_key(tmp_path):
    source = tiny_mae()
    state = source.state_dict()
    assert set(state) == published_mae_keys(2, 1)
    # As released: under "model", some files with a "module." wrapper.
    path = tmp_path / "mae_pretrain_vit_tiny_full.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    torch.manual_seed(1)
    model = tiny_mae()
    report = load_checkpoint(model, str(path))
    assert report.checkpoint_format == "mae_full"
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    images, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    loaded, original = model.forward_images(images, noise=noise), source.forward_images(images, noise=noise)
    assert torch.equal(loaded["loss"], original["loss"])


def test_vitdet_converter_fits_the_cls_slot():
    with_cls = torch.randn(1, 1 + 16 * 16, 8)
    assert torch.equal(fit_cls_slot(with_cls, 256), with_cls[:, 1:])
    added = fit_cls_slot(with_cls[:, 1:], 257)
    assert torch.equal(added[:, 1:], with_cls[:, 1:]) and not added[:, 0].any()
    assert torch.equal(fit_cls_slot(with_cls, 257), with_cls)
    # Another grid is left for the loader to refuse.
    assert torch.equal(fit_cls_slot(with_cls, 8 * 8), with_cls[:, 1:])


# ---- configs --------------------------------------------------------------------------

@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=[p.name for p in PRETRAIN_CONFIGS])
def test_pretrain_config_builds(path):
    cfg = LazyConfig.load(str(path))
    cfg.model.update(embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    cfg.dataloader.image_size = 32
    cfg.model.img_size = 32
    model = instantiate(cfg.model)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    losses = model([{"image": image} for image in images])
    assert set(losses) == {"loss_mae"} and torch.isfinite(losses["loss_mae"])
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    assert optimizer.defaults["betas"] == (0.9, 0.95) and optimizer.defaults["weight_decay"] == 0.05
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(model.norm.weight) in no_decay and id(model.decoder_embed.bias) in no_decay
    assert id(model.decoder_embed.weight) not in no_decay
    multiplier = instantiate(cfg.lr_multiplier)
    assert multiplier(0.0) == 0.0 and multiplier(0.999) < 1e-4
    assert instantiate(cfg.dataloader.train.mapper) is not None


def test_published_recipe_schedule():
    cfg = LazyConfig.load(str(ROOT / "configs" / "Pretrain" / "mae_vit_base_1600ep.py"))
    assert cfg.train.max_iter == 1600 * (1281167 // 4096)
    assert cfg.optimizer.lr == pytest.approx(1.5e-4 * 4096 / 256)
    multiplier = instantiate(cfg.lr_multiplier)
    warmup_end = 40 / 1600
    assert multiplier(warmup_end / 2) == pytest.approx(0.5)
    assert multiplier(warmup_end) == pytest.approx(1.0, abs=1e-6)
    assert multiplier(warmup_end + (1 - warmup_end) / 2) == pytest.approx(0.5)


def test_tiny_config_encoder_and_decoder_match_the_demo_detectors():
    tiny = LazyConfig.load(str(TINY_PRETRAIN)).model
    vit = LazyConfig.load(str(ROOT / "configs" / "demo" / "vitdet_tiny.py")).model.backbone.net
    mimdet = LazyConfig.load(str(ROOT / "configs" / "demo" / "mimdet_tiny.py")).model.backbone.bottom_up
    assert (tiny.patch_size, tiny.embed_dim, tiny.depth, tiny.num_heads) == (
        vit.patch_size, vit.embed_dim, vit.depth, vit.num_heads)
    assert (tiny.decoder_embed_dim, tiny.decoder_depth, tiny.decoder_num_heads) == (
        mimdet.decoder.decoder_embed_dim, mimdet.decoder.depth, mimdet.decoder.num_heads)


# ---- unlabeled data -------------------------------------------------------------------

def test_synthetic_pool_is_deterministic_per_index():
    register_synthetic_pools(["synthetic_unlabeled_50"])
    pool = DatasetCatalog.get("synthetic_unlabeled_50")
    assert len(pool) == 50
    assert np.array_equal(synthetic_pool_image(7), synthetic_pool_image(7))
    assert not np.array_equal(synthetic_pool_image(7), synthetic_pool_image(8))
    mapped = MAEPretrainMapper(image_size=64)(pool[3])
    assert mapped["image"].shape == (3, 64, 64) and mapped["image"].dtype == torch.uint8


def test_image_folder_is_read_recursively_and_bad_files_are_skipped_and_named(tmp_path, caplog):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for i, folder in enumerate([tmp_path, tmp_path / "a", tmp_path / "a" / "b"]):
        cv2.imwrite(str(folder / f"img{i}.png"), np.full((40, 60, 3), 50 * i, np.uint8))
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("skip me")
    assert len(list_images(str(tmp_path))) == 4
    with pytest.raises(ValueError, match="not found"):
        parse_unlabeled_spec(f"mine={tmp_path / 'missing'}")
    register_unlabeled_folder(*parse_unlabeled_spec(f"folder_test={tmp_path}"))
    loader = build_resumable_train_loader(
        DatasetCatalog.get("folder_test"), mapper=MAEPretrainMapper(image_size=32), total_batch_size=4,
        aspect_ratio_grouping=False, seed=0,
    )
    batches = [batch for batch, _ in zip(loader, range(3))]
    assert all(len(b) == 4 and all(x["image"].shape == (3, 32, 32) for x in b) for b in batches)
    assert all("broken" not in x["file_name"] for b in batches for x in b)
    assert loader.report.skips >= 1 and str(tmp_path / "a" / "broken.jpg") in loader.report.summary()


# ---- a short run through the trainer, and its checkpoint in the detectors -----------

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """40 iterations of configs/Pretrain/mae_vitdet_tiny.py through tools/train_net.py's entry."""
    output = tmp_path_factory.mktemp("mae_tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    args = cli.build_parser().parse_args([
        "--config-file", str(TINY_PRETRAIN), f"train.output_dir={output}", "train.max_iter=40",
        "dataloader.train.total_batch_size=16", "dataloader.train.num_workers=0", "train.log_period=2",
        "train.checkpointer.period=40", "dataloader.train.dataset.names=synthetic_unlabeled_2000",
    ])
    cli.main(args)
    torch.set_num_threads(threads)
    return output


def test_short_pretraining_run_lowers_the_loss_and_writes_a_checkpoint(pretrained):
    with open(pretrained / "metrics.json") as f:
        # One loss term: detectron2 logs it as total_loss only.
        losses = [r["total_loss"] for r in map(json.loads, f) if "total_loss" in r]
    assert len(losses) == 20
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, (first, last)
    state = torch.load(pretrained / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert set(state) == published_mae_keys(4, 2)


def _unmatched_backbone_keys(config, checkpoint):
    cfg = load_config(str(ROOT / "configs" / "demo" / config), [])
    model = instantiate(cfg.model)
    report = load_checkpoint(model, str(checkpoint))
    assert report.checkpoint_format == "mae_full" and report.mismatched == []
    return [k for k in report.missing if k.startswith("backbone.")], report


@pytest.mark.parametrize("config, detection_only, pretrained_keys", [
    ("vitdet_tiny.py", VITDET_DETECTION_ONLY,
     ["backbone.net.pos_embed", "backbone.net.patch_embed.proj.weight", "backbone.net.blocks.3.mlp.fc2.weight"]),
    ("mimdet_tiny.py", MIMDET_DETECTION_ONLY,
     ["backbone.bottom_up.encoder.pos_embed", "backbone.bottom_up.encoder.blocks.3.attn.qkv.weight",
      "backbone.bottom_up.decoder.decoder_blocks.1.mlp.fc1.weight", "backbone.bottom_up.decoder.decoder_embed.weight"]),
])
def test_checkpoint_loads_into_the_demo_detector(pretrained, config, detection_only, pretrained_keys):
    missing, report = _unmatched_backbone_keys(config, pretrained / "model_final.pth")
    not_detection_only = [k for k in missing if not any(re.search(p, k) for p in detection_only)]
    assert not_detection_only == []
    # Each named part is really there and really missing (the patterns are not vacuous).
    assert all(any(re.search(p, k) for k in missing) for p in detection_only)
    assert all(k in report.matched for k in pretrained_keys)
    assert os.path.isfile(pretrained / "model_final.pth")


def test_reconstruction_panels_keep_visible_patches_and_grey_masked_ones(tmp_path):
    model = tiny_mae(target="pixels")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    noise = torch.rand(2, 16)
    panels = reconstruction_panels(model, images, noise)
    assert all(panel.shape == (2, 32, 32, 3) for panel in panels.values())
    _, mask, _ = model.forward_encoder(torch.zeros(2, 3, 32, 32), 0.75, noise)
    visible = (mask == 0).reshape(2, 4, 1, 4, 1).expand(-1, -1, 8, -1, 8).reshape(2, 32, 32)
    assert torch.allclose(panels["prediction"][visible], panels["input"][visible], atol=1e-5)
    assert (panels["masked input"][~visible] == 0.5).all()
    assert not torch.allclose(panels["prediction"][~visible], panels["input"][~visible])
    plot_reconstructions(panels, tmp_path / "reconstructions.png")
    assert (tmp_path / "reconstructions.png").stat().st_size > 0


def test_pretrain_report_tool_writes_the_curve_and_the_picture(pretrained):
    pretrain_report = load_tool("pretrain_report")
    pretrain_report.main(["--config-file", str(TINY_PRETRAIN), "--run", str(pretrained), "--num-images", "2",
                          "dataloader.train.dataset.names=synthetic_unlabeled_2000"])
    assert (pretrained / "reconstructions.png").stat().st_size > 0
    assert (pretrained / "loss_curve.png").stat().st_size > 0
