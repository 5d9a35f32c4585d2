"""MaskFeat and SimMIM (pretrain/mask_token.py): their masks, the loss on masked positions
only, the mask token hiding masked pixels from the encoder, learning, the configs, a
run through the trainer, and the checkpoints loaded into the demo detectors."""
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import load_tool
from detectron2.config import LazyConfig, instantiate

from d2backbones.checkpoint import load_checkpoint
from d2backbones.data.unlabeled import synthetic_pool_image
from d2backbones.engine import cli
from d2backbones.engine.config import load_config
from d2backbones.layers import block_masking, random_patch_masking, upsample_mask
from d2backbones.pretrain import (
    BlockMask,
    HOGTarget,
    MaskTokenPretrainer,
    MaskTokenViT,
    RandomMask,
    masked_patch_l1,
    masked_patch_mse,
    unpatchify,
)
from d2backbones.reports.reconstructions import mask_token_panels
from d2backbones.swin import MaskedSwinTransformer

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "configs" / "Pretrain"
DEMO = ROOT / "configs" / "demo"
TINY_CONFIGS = ("maskfeat_vitdet_tiny", "simmim_vitdet_tiny", "simmim_swin_tiny", "maskfeat_swin_tiny")

# What each detector adds to the pretrained encoder, so no pretraining checkpoint has it.
VITDET_DETECTION_ONLY = (r"\.attn\.rel_pos_[hw]$", r"^backbone\.net\.blocks\.\d+\.residual\.", r"^backbone\.simfp_")
# The output norms of the stages the masked Swin does not output (res2, res3), and the FPN.
SWIN_DETECTION_ONLY = (r"^backbone\.bottom_up\.norm[01]\.", r"^backbone\.fpn_(lateral|output)\d\.")
# MIMDet: its ConvStem, and a decoder that no mask-token method has (so it starts at random).
MIMDET_DETECTION_ONLY = (r"^backbone\.bottom_up\.encoder\.patch_embed\.", r"^backbone\.bottom_up\.decoder\.",
                         r"^backbone\.fpn_")


def tiny_vit(img_size=32, patch_size=8):
    return MaskTokenViT(img_size=img_size, patch_size=patch_size, embed_dim=32, depth=2, num_heads=2)


def tiny_swin():
    return MaskedSwinTransformer(embed_dim=16, depths=(1, 1, 2, 2), num_heads=(1, 1, 2, 2), window_size=4,
                                 out_feature="res4")


def maskfeat(encoder=None):
    encoder = encoder or tiny_vit()
    return MaskTokenPretrainer(encoder=encoder, mask_generator=BlockMask(0.4, unit=encoder.out_stride, min_block=2),
                               target=HOGTarget(encoder.out_stride), head="linear", loss="mse")


def simmim(encoder=None, unit=16):
    return MaskTokenPretrainer(encoder=encoder or tiny_vit(), mask_generator=RandomMask(0.6, unit=unit),
                               target="pixels", head="pixel_shuffle", loss="l1")


# ---- masks ------------------------------------------------------------------------------

@pytest.mark.parametrize("grid", [(14, 14), (16, 16), (8, 8)])
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.4, 0.6])
def test_block_mask_masks_exactly_the_ratio_in_blocks(grid, ratio):
    cells = grid[0] * grid[1]
    mask = block_masking(6, grid, ratio, min_block=4)
    assert mask.shape == (6, *grid)
    assert mask.sum(dim=(1, 2)).tolist() == [round(cells * ratio)] * 6
    if ratio > 0:
        # Blocks: far less masked-visible border per masked cell than cells drawn one by one.
        def border(m):
            return ((m[:, 1:] != m[:, :-1]).sum() + (m[:, :, 1:] != m[:, :, :-1]).sum()) / m.sum()

        assert border(mask) < 0.75 * border(random_patch_masking(6, grid, ratio))


@pytest.mark.parametrize("grid, ratio, masked", [((6, 6), 0.6, 22), ((4, 4), 0.6, 10), ((8, 8), 0.6, 39),
                                                 ((10, 1), 0.7, 7), ((7, 7), 0.0, 0)])
def test_simmim_mask_masks_ceil_of_the_ratio_per_image(grid, ratio, masked):
    mask = random_patch_masking(5, grid, ratio)
    assert mask.sum(dim=(1, 2)).tolist() == [masked] * 5
    if 0 < masked < grid[0] * grid[1]:
        assert len({tuple(m.flatten().tolist()) for m in mask}) > 1


def test_masks_repeat_with_the_generator_and_refuse_a_bad_ratio():
    for draw in (lambda g: block_masking(3, (14, 14), 0.4, generator=g), lambda g: random_patch_masking(3, (6, 6), 0.6, generator=g)):
        assert torch.equal(draw(torch.Generator().manual_seed(3)), draw(torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="mask_ratio"):
        block_masking(1, (4, 4), 1.0)
    # A mask cell becomes unit / patch tokens per side.
    cells = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert torch.equal(upsample_mask(cells, 2)[0], torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]))


# ---- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("build, loss_fn", [(maskfeat, masked_patch_mse), (simmim, masked_patch_l1)], ids=["maskfeat", "simmim"])
def test_loss_depends_only_on_masked_positions(build, loss_fn):
    model = build()
    out = model.forward_images(torch.randn(2, 3, 32, 32))
    pred, target, mask = out["pred"].detach(), out["target"], out["mask"]
    assert mask.shape == pred.shape[:2] == (2, 16) and 0 < mask.sum() < mask.numel()
    loss = out["loss"].detach()
    assert torch.equal(loss_fn(pred, target, mask), loss)
    visible, masked = (mask == 0).nonzero()[0], (mask == 1).nonzero()[0]
    changed = target.clone()
    changed[visible[0], visible[1]] += 5.0
    assert torch.equal(loss_fn(pred, changed, mask), loss)
    changed = target.clone()
    changed[masked[0], masked[1]] += 5.0
    assert loss_fn(pred, changed, mask) > loss


def test_simmim_loss_is_the_l1_over_masked_pixels_of_the_pixel_shuffled_image():
    model = simmim()
    images, cells = torch.randn(2, 3, 32, 32), random_patch_masking(2, (2, 2), 0.6)
    out = model.forward_images(images, mask=cells)
    reconstruction = unpatchify(out["pred"], 8, (4, 4))
    pixel_mask = upsample_mask(cells, 16)[:, None]
    # SimMIM's models/simmim.py formula.
    reference = (F.l1_loss(images, reconstruction, reduction="none") * pixel_mask).sum() / pixel_mask.sum() / 3
    assert torch.allclose(out["loss"], reference, atol=1e-6)


@pytest.mark.parametrize("encoder, size, unit", [(tiny_vit, 32, 16), (tiny_swin, 64, 32)], ids=["vit", "swin"])
def test_encoder_never_sees_the_pixels_of_masked_patches(encoder, size, unit):
    encoder = encoder().eval()
    images = torch.randn(2, 3, size, size)
    cells = random_patch_masking(2, (size // unit, size // unit), 0.6)
    token_mask = upsample_mask(cells, unit // encoder.patch_size)
    pixel_mask = upsample_mask(cells, unit)[:, None].bool()
    features = encoder(images, token_mask)
    assert features.shape == (2, encoder.out_channels, size // encoder.out_stride, size // encoder.out_stride)
    scrambled = torch.where(pixel_mask, torch.randn_like(images) * 100, images)
    assert torch.allclose(encoder(scrambled, token_mask), features, atol=1e-5)
    nudged = torch.where(pixel_mask, images, images + 1.0)
    assert not torch.allclose(encoder(nudged, token_mask), features, atol=1e-3)


def test_parts_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="mask unit"):
        MaskTokenPretrainer(encoder=tiny_vit(), mask_generator=RandomMask(unit=12))
    with pytest.raises(ValueError, match="patch_size=8"):
        MaskTokenPretrainer(encoder=tiny_vit(), mask_generator=RandomMask(unit=16), target=HOGTarget(16))
    with pytest.raises(ValueError, match="head='linear'"):
        MaskTokenPretrainer(encoder=tiny_vit(), mask_generator=BlockMask(unit=8), target="hog", head="pixel_shuffle")


def _synthetic_batch(size, count=8):
    images = torch.stack([torch.as_tensor(synthetic_pool_image(i).copy()).permute(2, 0, 1) for i in range(count)])
    images = F.interpolate(images.float(), size=size, mode="area").round().to(torch.uint8)
    return [{"image": image} for image in images]


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_short_pretraining_lowers_the_loss(name):
    """20 AdamW steps of each tiny config's method (encoder shrunk) on 8 synthetic images,
    a fresh mask every step."""
    cfg = LazyConfig.load(str(PRETRAIN / f"{name}.py"))
    if "vitdet" in name:
        cfg.dataloader.image_size = 32
        cfg.model.encoder.update(embed_dim=64, depth=2, num_heads=2)
    else:
        # The smallest size with more than one 32-px mask cell.
        cfg.dataloader.image_size = 64
        cfg.model.encoder.update(embed_dim=16, depths=(1, 1, 2, 2), num_heads=(1, 1, 2, 2))
    model = instantiate(cfg.model).train()
    batch = _synthetic_batch(cfg.dataloader.image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    losses = []
    for _ in range(20):
        loss = model(batch)[cfg.model.loss_name]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, (name, losses)


# ---- configs -------------------------------------------------------------------------------

def test_published_recipes():
    maskfeat_cfg = LazyConfig.load(str(PRETRAIN / "maskfeat_vit_base_1600ep.py"))
    assert maskfeat_cfg.train.max_iter == 1600 * (1281167 // 2048)
    assert maskfeat_cfg.optimizer.lr == pytest.approx(2e-4 * 2048 / 256)
    assert tuple(maskfeat_cfg.optimizer.betas) == (0.9, 0.999)
    assert instantiate(maskfeat_cfg.lr_multiplier)(30 / 1600) == pytest.approx(1.0, abs=1e-6)
    model = maskfeat_cfg.model
    assert (model.mask_generator.mask_ratio, model.target.nbins, model.target.cell_size, model.target.gaussian_window,
            model.loss, model.head) == (0.4, 9, 8, 16, "mse", "linear")
    assert round(14 * 14 * model.mask_generator.mask_ratio) == 78

    simmim_cfg = LazyConfig.load(str(PRETRAIN / "simmim_swin_base_800ep.py"))
    assert simmim_cfg.dataloader.image_size == 192 and simmim_cfg.model.encoder.window_size == 6
    assert simmim_cfg.train.max_iter == 800 * (1281167 // 2048)
    assert simmim_cfg.optimizer.lr == pytest.approx(1e-4 * 2048 / 512)
    multiplier = instantiate(simmim_cfg.lr_multiplier)
    assert multiplier(0.0) == pytest.approx(0.005) and multiplier(10 / 800) == pytest.approx(1.0, abs=1e-3)
    assert multiplier(699 / 800) == 1.0 and multiplier(701 / 800) == pytest.approx(0.1)
    assert (simmim_cfg.model.mask_generator.unit, simmim_cfg.model.mask_generator.mask_ratio) == (32, 0.6)


def test_tiny_config_encoders_are_the_demo_detectors():
    vit = LazyConfig.load(str(DEMO / "vitdet_tiny.py")).model.backbone.net
    swin = LazyConfig.load(str(DEMO / "swin_tiny.py")).model.backbone.bottom_up
    for name in TINY_CONFIGS:
        encoder = LazyConfig.load(str(PRETRAIN / f"{name}.py")).model.encoder
        demo, keys = ((vit, ("patch_size", "embed_dim", "depth", "num_heads")) if "vitdet" in name else
                      (swin, ("embed_dim", "depths", "num_heads", "window_size", "out_feature")))
        if "out_feature" in keys:
            demo = {**demo, "out_feature": demo.out_features[-1]}
        assert [encoder[k] for k in keys] == [demo[k] for k in keys], name


# ---- through the trainer, and into the detectors -------------------------------------------

@pytest.fixture(scope="module")
def swin_run(tmp_path_factory):
    """6 iterations of configs/Pretrain/simmim_swin_tiny.py through tools/train_net.py's entry, at 64 px."""
    output = tmp_path_factory.mktemp("simmim_swin_tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cli.main(cli.build_parser().parse_args([
        "--config-file", str(PRETRAIN / "simmim_swin_tiny.py"), f"train.output_dir={output}", "train.max_iter=6",
        "dataloader.image_size=64", "dataloader.train.total_batch_size=4", "dataloader.train.num_workers=0",
        "train.log_period=1", "train.checkpointer.period=6", "dataloader.train.dataset.names=synthetic_unlabeled_2000",
    ]))
    torch.set_num_threads(threads)
    return output


def _load_into_demo(config, checkpoint, detection_only, opts=()):
    model = instantiate(load_config(str(DEMO / config), list(opts)).model)
    report = load_checkpoint(model, str(checkpoint))
    missing = [k for k in report.missing if k.startswith("backbone.")]
    assert [k for k in missing if not any(re.search(p, k) for p in detection_only)] == []
    # Each named part is really there and really missing (the patterns are not vacuous).
    assert all(any(re.search(p, k) for k in missing) for p in detection_only)
    assert report.unexpected == [] and report.mismatched == []
    return report, model


def test_swin_run_writes_a_simmim_checkpoint_that_loads_into_the_swin_demo(swin_run):
    with open(swin_run / "metrics.json") as f:
        # One loss term: detectron2 logs it as total_loss only.
        losses = [r["total_loss"] for r in map(json.loads, f) if "total_loss" in r]
    assert len(losses) == 6 and all(0 < loss < 10 for loss in losses)
    state = torch.load(swin_run / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert {"encoder.mask_token", "encoder.norm2.weight", "decoder.0.weight"} <= set(state)
    report, _ = _load_into_demo("swin_tiny.py", swin_run / "model_final.pth", SWIN_DETECTION_ONLY)
    assert report.checkpoint_format == "mask_token_mim"
    for key in ("patch_embed.proj.weight", "layers.2.blocks.3.attn.qkv.weight", "layers.1.downsample.reduction.weight",
                "norm2.weight"):
        assert "backbone.bottom_up." + key in report.matched


def test_vit_checkpoint_loads_into_vitdet_and_mimdet_as_an_mae_encoder(tmp_path):
    # MaskFeat's and SimMIM's ViT configs share the encoder, so one stands for both.
    model = instantiate(LazyConfig.load(str(PRETRAIN / "maskfeat_vitdet_tiny.py")).model)
    path = tmp_path / "model_final.pth"
    torch.save({"model": model.state_dict()}, path)
    report, detector = _load_into_demo("vitdet_tiny.py", path, VITDET_DETECTION_ONLY)
    assert report.checkpoint_format == "mae"
    assert {"backbone.net.pos_embed", "backbone.net.patch_embed.proj.weight"} <= set(report.matched)
    assert torch.equal(detector.backbone.net.blocks[3].mlp.fc2.weight, model.encoder.blocks[3].mlp.fc2.weight)
    # The demo ViT stores no cls slot: the converter drops it.
    assert torch.equal(detector.backbone.net.pos_embed, model.encoder.pos_embed[:, 1:])
    report, detector = _load_into_demo("mimdet_tiny.py", path, MIMDET_DETECTION_ONLY,
                                       ["model.backbone.bottom_up.allow_random_decoder=True"])
    assert torch.equal(detector.backbone.bottom_up.encoder.blocks[3].attn.qkv.weight,
                       model.encoder.blocks[3].attn.qkv.weight)


def test_checkpoints_continue_pretraining_and_an_mae_encoder_starts_one(tmp_path):
    source = maskfeat()
    path = tmp_path / "maskfeat.pth"
    torch.save({"model": source.state_dict()}, path)
    model = maskfeat()
    report = load_checkpoint(model, str(path))
    assert report.checkpoint_format == "mae" and report.missing == report.unexpected == []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in source.state_dict().items())
    # An MAE encoder release (no mask token, no head): only those stay at their init.
    mae = {k[len("encoder."):]: v for k, v in source.state_dict().items()
           if k.startswith("encoder.") and k != "encoder.mask_token"}
    torch.save({"model": mae}, tmp_path / "mae_pretrain_vit_tiny.pth")
    report = load_checkpoint(maskfeat(), str(tmp_path / "mae_pretrain_vit_tiny.pth"))
    assert sorted(report.missing) == ["decoder.bias", "decoder.weight", "encoder.mask_token"]
    swin = simmim(tiny_swin(), unit=32)
    torch.save({"model": swin.state_dict()}, tmp_path / "swin.pth")
    report = load_checkpoint(simmim(tiny_swin(), unit=32), str(tmp_path / "swin.pth"))
    assert report.checkpoint_format == "mask_token_mim" and report.missing == report.unexpected == []


def test_simmim_release_layout_converts_like_ours():
    """SimMIM's Swin releases keep the official layout: patch merging at the end of stage i
    and a final ``norm``. Rebuilt from our keys, it must convert to the same detector keys."""
    from d2backbones.swin import convert_mask_token_swin_checkpoint

    ours = simmim(tiny_swin(), unit=32).state_dict()
    release = {}
    for key, value in ours.items():
        match = re.match(r"encoder\.layers\.(\d+)\.downsample\.(.*)", key)
        key = f"encoder.layers.{int(match[1]) - 1}.downsample.{match[2]}" if match else key
        release[key.replace("encoder.norm2.", "encoder.norm.")] = value
    converted, expected = convert_mask_token_swin_checkpoint(release), convert_mask_token_swin_checkpoint(ours)
    assert set(expected) - set(converted) == {"backbone.bottom_up.norm2.weight", "backbone.bottom_up.norm2.bias"}
    assert all(torch.equal(converted[k], expected[k]) for k in converted)


# ---- pictures -----------------------------------------------------------------------------

def test_maskfeat_picture_draws_hog_glyphs_of_masked_patches_only():
    model = maskfeat(tiny_vit(img_size=32, patch_size=16))
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    images[..., 20:] = 255
    cells = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    panels = mask_token_panels(model, images, cells)
    # 4 x 4 cells of 8 px, each drawn 16 px wide; a patch is 2 x 2 cells.
    target = panels["target"][0]
    assert target.shape == (64, 64, 3)
    # The visible patches (top right, bottom left) stay black, and so do flat masked cells.
    assert target[:32, 32:].sum() == 0 and target[32:, :32].sum() == 0 and target[:32, :32].sum() == 0
    assert target[32:, 48:].sum() == 0
    # The masked bottom-right patch holds the vertical edge (cell column 2): a vertical line.
    for glyph in (target[32:48, 32:48], target[48:64, 32:48]):
        rows, cols = glyph.sum(-1).nonzero().unbind(1)
        assert cols.max() - cols.min() <= 1 and rows.max() - rows.min() >= 12
    masked_input = panels["masked input"][0]
    assert (masked_input[:16, :16] == 0.5).all() and torch.equal(masked_input[:16, 16:], panels["input"][0, :16, 16:])


def test_simmim_picture_and_the_report_tool_on_the_swin_run(swin_run):
    cfg = LazyConfig.load(str(PRETRAIN / "simmim_swin_tiny.py"))
    cfg.dataloader.image_size = 64
    model = instantiate(cfg.model)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    cells = random_patch_masking(2, (2, 2), 0.6)
    panels = mask_token_panels(model, images, cells)
    visible = ~upsample_mask(cells, 32).bool()
    assert torch.allclose(panels["prediction"][visible], panels["input"][visible], atol=1e-5)
    assert (panels["masked input"][~visible] == 0.5).all() and (panels["target"][visible] == 0.5).all()
    load_tool("pretrain_report").main(["--config-file", str(PRETRAIN / "simmim_swin_tiny.py"), "--run", str(swin_run),
                                       "--num-images", "2", "dataloader.image_size=64",
                                       "dataloader.train.dataset.names=synthetic_unlabeled_2000"])
    assert (swin_run / "reconstructions.png").stat().st_size > 0 and (swin_run / "loss_curve.png").stat().st_size > 0
