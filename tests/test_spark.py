"""SparK pretraining for ConvNeXt: the sparse encoder leaks nothing from masked cells at
any scale and equals the detection backbone when nothing is masked, the cell mask,
the mask tokens, the loss on masked cells only, SparK's optimiser, the configs, a
short run through the trainer, and its checkpoint in the tiny ConvNeXt detector."""
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import load_tool
from detectron2.config import LazyConfig, instantiate

from d2backbones.checkpoint import load_checkpoint
from d2backbones.convnext import ConvNeXt, SparseConvNeXt
from d2backbones.engine import cli
from d2backbones.engine.config import load_config
from d2backbones.layers import upsample_mask
from d2backbones.pretrain import SparK, masked_patch_mse
from d2backbones.pretrain.optim import CosineWeightDecayLamb, decay_param_groups
from d2backbones.pretrain.spark import num_visible_cells
from d2backbones.reports.reconstructions import plot_reconstructions, reconstruction_panels

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY_PRETRAIN = ROOT / "configs" / "Pretrain" / "spark_convnext_tiny.py"
BASE_PRETRAIN = ROOT / "configs" / "Pretrain" / "spark_convnext_base_1600ep.py"
TINY_SIZES = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32))
# What the detector adds to the pretrained encoder: the output norms and the FPN.
CONVNEXT_DETECTION_ONLY = (r"^backbone\.bottom_up\.norm\d\.", r"^backbone\.fpn_(lateral|output)\d\.")


def tiny_encoder(num_stages=4, **overrides):
    """Weights as after training: layer scale 1 (not 1e-6) so that every block's branch
    weighs in, and every weight perturbed so that no bias or norm shift is zero (a
    masked position then shows anything that is not masked away)."""
    encoder = SparseConvNeXt(**{**TINY_SIZES, "layer_scale_init_value": 1.0, "num_stages": num_stages, **overrides})
    with torch.no_grad():
        for param in encoder.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return encoder


def tiny_spark(num_stages=4, **overrides):
    kwargs = dict(img_size=64 if num_stages == 4 else 32, decoder_width=32, target="norm_pixels")
    return SparK(encoder=tiny_encoder(num_stages), **{**kwargs, **overrides})


def cell_mask_to_pixels(visible, cell, channels=3):
    """(B, h, w) bool -> (B, C, h * cell, w * cell) bool."""
    return upsample_mask(visible, cell)[:, None].expand(-1, channels, -1, -1)


# ---- the sparse encoder ------------------------------------------------------------

@pytest.mark.parametrize("num_stages", [3, 4])
def test_no_leak_encoder_outputs_at_visible_positions_ignore_masked_pixels_at_every_scale(num_stages):
    encoder = tiny_encoder(num_stages).eval()
    cell = encoder.downsample_ratio
    images = torch.randn(2, 3, 4 * cell, 4 * cell)
    visible = torch.rand(2, 4, 4).argsort(dim=-1) < 2  # 2 of every row of 4 cells
    masked_pixels = ~cell_mask_to_pixels(visible, cell)
    scrambled = torch.where(masked_pixels, torch.randn_like(images) * 100, images)
    nudged = torch.where(masked_pixels, images, images + 1.0)
    with torch.no_grad():
        outputs, outputs_scrambled, outputs_nudged = (encoder(x, visible) for x in (images, scrambled, nudged))
    assert [o.shape[-1] for o in outputs] == [4 * cell // s for s in encoder.out_strides]
    for out, out_scrambled, out_nudged, stride in zip(outputs, outputs_scrambled, outputs_nudged, encoder.out_strides):
        visible_here = upsample_mask(visible, cell // stride)[:, None].expand_as(out)
        assert torch.allclose(out_scrambled[visible_here], out[visible_here], atol=1e-6, rtol=0), stride
        # Masked positions hold nothing, as in a sparse tensor.
        assert (out[~visible_here] == 0).all() and (out_scrambled[~visible_here] == 0).all()
        # The visible pixels do reach every scale (the check above is not vacuous).
        assert (out_nudged[visible_here] - out[visible_here]).abs().max() > 1e-2, stride


def test_the_same_weights_run_densely_would_leak():
    """The 7 x 7 depthwise convs of the detection backbone reach into masked cells:
    this is what the masks of the sparse forward prevent."""
    encoder = tiny_encoder().eval()
    dense = ConvNeXt(**TINY_SIZES, layer_scale_init_value=1.0).eval()
    dense.load_state_dict(encoder.state_dict(), strict=False)
    images = torch.randn(1, 3, 128, 128)
    visible = torch.tensor([[[True, False, True, False]] * 4])
    scrambled = torch.where(~cell_mask_to_pixels(visible, 32), torch.randn_like(images) * 100, images)

    def res2(x):
        return dense.stages[0](dense.stem(x))

    with torch.no_grad():
        leak = (res2(scrambled) - res2(images))[upsample_mask(visible, 8)[:, None].expand(-1, 8, -1, -1)]
    assert leak.abs().max() > 1e-2


def test_all_visible_is_the_detection_backbone_with_the_same_names():
    encoder = tiny_encoder().eval()
    dense = ConvNeXt(**TINY_SIZES, layer_scale_init_value=1.0).eval()
    output_norms = {f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    assert output_norms <= set(dense.state_dict())
    assert set(encoder.state_dict()) == set(dense.state_dict()) - output_norms
    dense.load_state_dict(encoder.state_dict(), strict=False)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        sparse_outputs = encoder(images, torch.ones(2, 2, 2, dtype=torch.bool))
        x, dense_outputs = dense.stem(images), []
        for stage in dense.stages:
            x = stage(x)
            dense_outputs.append(x)
    for sparse_out, dense_out in zip(sparse_outputs, dense_outputs, strict=True):
        assert torch.allclose(sparse_out, dense_out, atol=1e-6, rtol=0)


def test_encoder_refuses_a_mask_off_its_grid():
    with pytest.raises(ValueError, match="32-pixel grid"):
        tiny_encoder()(torch.randn(1, 3, 64, 64), torch.ones(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_encoder()(torch.randn(1, 3, 48, 64), torch.ones(1, 1, 2, dtype=torch.bool))


# ---- masking, mask tokens and the loss ----------------------------------------------

@pytest.mark.parametrize("grid, ratio, kept", [((7, 7), 0.6, 20), ((4, 4), 0.6, 6), ((8, 8), 0.6, 26),
                                               ((7, 7), 0.75, 12), ((4, 4), 0.0, 16)])
def test_cell_mask_keeps_round_of_the_unmasked_share_per_image(grid, ratio, kept):
    assert num_visible_cells(grid[0] * grid[1], ratio) == kept
    visible = tiny_spark().random_visible(5, grid, ratio)
    assert visible.shape == (5, *grid) and visible.dtype == torch.bool
    assert visible.flatten(1).sum(1).tolist() == [kept] * 5
    if 0 < kept < grid[0] * grid[1]:
        assert len({tuple(v.flatten().tolist()) for v in visible}) > 1, "every image draws its own mask"


def test_mask_tokens_fill_the_masked_positions_of_every_scale():
    model = tiny_spark()
    images, noise = torch.randn(2, 3, 64, 64), torch.rand(2, 4)
    out = model.forward_images(images, noise=noise)
    out["loss"].backward()
    assert all(token.grad.abs().sum() > 0 for token in model.mask_tokens)
    # Nothing masked: no mask token reaches the decoder.
    model.zero_grad()
    model.forward_images(images, mask_ratio=0.0)["loss"].backward()
    assert all(token.grad is None or not token.grad.any() for token in model.mask_tokens)


def test_loss_depends_only_on_masked_cells():
    model = tiny_spark()
    out = model.forward_images(torch.randn(2, 3, 64, 64), noise=torch.rand(2, 4))
    pred, target, mask = out["pred"].detach(), out["target"], out["mask"]
    assert pred.shape == target.shape == (2, 4, 32 * 32 * 3)
    assert mask.sum(1).tolist() == [4 - num_visible_cells(4, 0.6)] * 2
    assert torch.equal(masked_patch_mse(pred, target, mask), out["loss"].detach())
    visible, masked = (mask == 0).nonzero()[0], (mask == 1).nonzero()[0]
    for changed_at, same in ((visible, True), (masked, False)):
        changed = target.clone()
        changed[changed_at[0], changed_at[1]] += 5.0
        assert torch.equal(masked_patch_mse(pred, changed, mask), out["loss"].detach()) is same
    # The decoder's pixels at visible cells get no gradient.
    pred = pred.requires_grad_()
    masked_patch_mse(pred, target, mask).backward()
    assert not pred.grad[mask == 0].any() and pred.grad[mask == 1].any()


def test_a_non_pixel_target_is_refused():
    class FourValues(torch.nn.Module):
        dim = 4

    with pytest.raises(ValueError, match="predicts pixels"):
        tiny_spark(target=FourValues())


# ---- SparK's optimiser ----------------------------------------------------------------

def test_cosine_weight_decay_schedule_and_its_resume():
    model = tiny_spark()

    def build():
        return CosineWeightDecayLamb(decay_param_groups(model, ("mask_tokens",)), lr=1e-3, weight_decay=0.04,
                                     weight_decay_end=0.2, max_iter=5)

    optimizer = build()
    decay, no_decay = optimizer.param_groups
    no_decay_ids = {id(p) for p in no_decay["params"]}
    assert {id(t) for t in model.mask_tokens} <= no_decay_ids
    assert id(model.sparse_encoder.stages[0].blocks[0].gamma) in no_decay_ids
    assert id(model.densify_projs[1].weight) not in no_decay_ids
    seen = []
    for step in range(5):
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
        seen.append((decay["weight_decay"], no_decay["weight_decay"]))
        if step == 1:
            saved = optimizer.state_dict()
    assert [d for d, _ in seen] == pytest.approx([0.04, 0.04 + 0.16 * 0.5 * (1 - 0.5 ** 0.5), 0.12,
                                                  0.2 - 0.16 * 0.5 * (1 - 0.5 ** 0.5), 0.2])
    assert all(n == 0.0 for _, n in seen)
    resumed = build()
    resumed.load_state_dict(saved)
    resumed.step()
    assert resumed.param_groups[0]["weight_decay"] == pytest.approx(seen[2][0])


# ---- configs ----------------------------------------------------------------------------

def test_published_recipe():
    cfg = LazyConfig.load(str(BASE_PRETRAIN))
    assert cfg.train.max_iter == 1600 * (1281167 // 4096)
    assert cfg.optimizer.lr == pytest.approx(2e-4 * 4096 / 256)
    assert (cfg.optimizer.weight_decay, cfg.optimizer.weight_decay_end, cfg.optimizer.max_grad_norm) == (0.04, 0.2, 5.0)
    assert tuple(cfg.optimizer.betas) == (0.9, 0.999)
    assert (cfg.model.mask_ratio, cfg.model.decoder_width, cfg.dataloader.image_size) == (0.6, 768, 224)
    assert tuple(cfg.model.encoder.dims) == (128, 256, 512, 1024) and cfg.model.encoder.drop_path_rate == 0.3
    assert tuple(cfg.dataloader.train.mapper.scale) == (0.67, 1.0)
    multiplier = instantiate(cfg.lr_multiplier)
    warmup_end = 40 / 1600
    assert multiplier(0.0) == pytest.approx(0.005) and multiplier(warmup_end) == pytest.approx(1.0, abs=1e-6)
    assert multiplier(0.9999999) == pytest.approx(0.001, abs=1e-6)
    # It builds and runs (shrunk), SyncBN included on one CPU process.
    cfg.model.encoder.update(dims=(8, 16, 24, 32), depths=(1, 1, 1, 1))
    cfg.model.decoder_width = 32
    cfg.dataloader.image_size = 64
    model = instantiate(cfg.model)
    assert model.patch_size == 32 and model.grid == 2
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    losses = model([{"image": image} for image in images])
    assert set(losses) == {"loss_spark"} and torch.isfinite(losses["loss_spark"])


def test_tiny_config_encoder_is_the_demo_detectors_convnext():
    tiny = LazyConfig.load(str(TINY_PRETRAIN)).model.encoder
    demo = LazyConfig.load(str(ROOT / "configs" / "demo" / "convnext_tiny.py")).model.backbone.bottom_up
    assert (tuple(tiny.depths), tuple(tiny.dims), tiny.drop_path_rate) == (
        tuple(demo.depths), tuple(demo.dims), demo.drop_path_rate)
    # Its stages are the detector's, through its last output.
    assert tiny.num_stages == len(demo.out_features)


# ---- a short run through the trainer, and its checkpoint in the detector -----------

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """configs/Pretrain/spark_convnext_tiny.py through tools/train_net.py's entry, shortened."""
    output = tmp_path_factory.mktemp("spark_tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    args = cli.build_parser().parse_args([
        "--config-file", str(TINY_PRETRAIN), f"train.output_dir={output}", "train.max_iter=30",
        # A constant lr after the warm-up: a 30-step cosine would halve it by step 15.
        "lr_multiplier.schedulers.1.end_value=1.0",
        "dataloader.image_size=64", "dataloader.train.total_batch_size=8", "dataloader.train.num_workers=0",
        "train.log_period=2", "train.checkpointer.period=30", "dataloader.train.dataset.names=synthetic_unlabeled_2000",
    ])
    cli.main(args)
    torch.set_num_threads(threads)
    return output


def test_short_pretraining_run_lowers_the_loss(pretrained):
    with open(pretrained / "metrics.json") as f:
        losses = [r["total_loss"] for r in map(json.loads, f) if "total_loss" in r]
    assert len(losses) == 15
    # Each logged loss is detectron2's median of the last 20 steps, so the fall lags
    # (measured: 0.995 -> 0.916 over these 30 steps).
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.95 * first, (first, last)


def test_pretraining_checkpoint_resumes_with_no_missing_key(pretrained):
    model = instantiate(load_config(str(TINY_PRETRAIN), ["dataloader.image_size=64"]).model)
    report = load_checkpoint(model, str(pretrained / "model_final.pth"))
    assert report.checkpoint_format == "spark"
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_checkpoint_loads_into_the_demo_convnext_detector(pretrained):
    state = torch.load(pretrained / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    detector = instantiate(load_config(str(ROOT / "configs" / "demo" / "convnext_tiny.py"), []).model)
    report = load_checkpoint(detector, str(pretrained / "model_final.pth"))
    assert report.checkpoint_format == "spark" and report.mismatched == [] and report.unexpected == []
    missing = [k for k in report.missing if k.startswith("backbone.")]
    assert [k for k in missing if not any(re.search(p, k) for p in CONVNEXT_DETECTION_ONLY)] == []
    # Each named part is really there and really missing (the patterns are not vacuous).
    assert all(any(re.search(p, k) for k in missing) for p in CONVNEXT_DETECTION_ONLY)
    encoder_keys = [k for k in state if k.startswith("sparse_encoder.")]
    assert len(encoder_keys) == len([k for k in report.matched if k.startswith("backbone.bottom_up.")]) > 0
    loaded = detector.state_dict()
    for key in ("stem.0.weight", "stages.2.blocks.5.mlp.fc2.weight", "stages.1.downsample.1.weight"):
        assert torch.equal(loaded[f"backbone.bottom_up.{key}"], state[f"sparse_encoder.{key}"])


def test_reconstruction_panels_show_the_visible_cells_and_grey_masked_ones(tmp_path):
    model = tiny_spark(target="pixels")
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    noise = torch.rand(2, 4)
    panels = reconstruction_panels(model, images, noise)
    assert all(panel.shape == (2, 64, 64, 3) for panel in panels.values())
    visible = upsample_mask(model.random_visible(2, (2, 2), 0.6, noise), 32)
    assert torch.allclose(panels["prediction"][visible], panels["input"][visible], atol=1e-5)
    assert (panels["masked input"][~visible] == 0.5).all()
    assert not torch.allclose(panels["prediction"][~visible], panels["input"][~visible])
    plot_reconstructions(panels, tmp_path / "reconstructions.png")
    assert (tmp_path / "reconstructions.png").stat().st_size > 0


def test_pretrain_report_tool_draws_a_spark_run(pretrained):
    load_tool("pretrain_report").main([
        "--config-file", str(TINY_PRETRAIN), "--run", str(pretrained), "--num-images", "2",
        "dataloader.image_size=64", "dataloader.train.dataset.names=synthetic_unlabeled_2000",
    ])
    assert (pretrained / "reconstructions.png").stat().st_size > 0
    assert (pretrained / "loss_curve.png").stat().st_size > 0
