"""MIMDet: sizes against the reference, padding-aware partial-token sampling,
equivalence with hand-built timm computations (every token, and fixed kept tokens at
ratio 0.5), gradients, SyncBN over two gloo processes, MAE checkpoint conversion, and
a short training run. (``tools/train_net.py`` runs of the demo config are covered by
tests/test_configs.py for building and by the demo itself for training.)"""
import gc
import logging
import math
import os
import time
import weakref
from functools import partial

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from conftest import RecordingCheckpointer, num_params, vit_block_state
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.layers import NaiveSyncBatchNorm, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage
from timm.models.vision_transformer import Block as TimmBlock

import d2backbones.mimdet.backbone as mimdet_backbone
from d2backbones.checkpoint import unwrap_state_dict
from d2backbones.checkpoint.shared_formats import is_mae_checkpoint, is_mae_full_checkpoint
from d2backbones.mimdet import (
    ConvStem,
    MIMDetBackbone,
    MIMDetDecoder,
    MIMDetEncoder,
    add_mimdet_config,
    convert_mae_checkpoint,
    convert_mae_full_checkpoint,
    is_mimdet_checkpoint,
    mimdet_lr_factor,
    sync_batch_norm,
)
from d2backbones.mimdet.token_sampling import sample_kept_tokens, valid_token_mask

COCO = "configs/MIMDet/COCO/"
BASE = COCO + "mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py"
LARGE = COCO + "mimdet_vit_large_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py"
BASE_BS16 = COCO + "mimdet_vit_base_mask_rcnn_fpn_sr_0p25_800_1333_4xdec_coco_3x_bs16.py"
DEMO = "configs/demo/mimdet_tiny.py"

WIDTH, DECODER_WIDTH = 32, 16
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_backbone(unkept_token_fill="conv_feature", act_checkpoint=False, **kwargs):
    torch.manual_seed(0)
    return MIMDetBackbone(
        MIMDetEncoder(img_size=64, embed_dim=WIDTH, depth=2, num_heads=2, drop_path_rate=0.0,
                      use_act_checkpoint=act_checkpoint, stem_act_checkpoint=act_checkpoint),
        MIMDetDecoder(img_size=64, embed_dim=WIDTH, decoder_embed_dim=DECODER_WIDTH, depth=2, num_heads=2,
                      unkept_token_fill=unkept_token_fill, use_act_checkpoint=act_checkpoint),
        **kwargs,
    )


def tiny_detector(unkept_token_fill="conv_feature", **backbone_overrides):
    """The demo detector, shrunk to WIDTH / DECODER_WIDTH."""
    cfg = LazyConfig.load(DEMO)
    bottom_up = cfg.model.backbone.bottom_up
    bottom_up.encoder.update(embed_dim=WIDTH, depth=2, num_heads=2, img_size=64)
    bottom_up.decoder.update(decoder_embed_dim=DECODER_WIDTH, depth=2, num_heads=2, unkept_token_fill=unkept_token_fill)
    bottom_up.update(backbone_overrides)
    torch.manual_seed(0)
    return instantiate(cfg.model)


# ---- sizes ------------------------------------------------------------------


def test_conv_stem_of_vit_b():
    stem = ConvStem(embed_dim=768)
    assert num_params(stem) == pytest.approx(4.1e6, abs=0.15e6)  # reference: 4.08M
    convs = [m for m in stem.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 192, 384, 768, 768]
    assert all(c.bias is None and c.stride == (2, 2) for c in convs[:4])
    assert all(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in stem.modules() if "Norm" in type(m).__name__)
    maps = ConvStem(embed_dim=64)(torch.randn(1, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(1, 16, 16, 24), (1, 32, 8, 12), (1, 64, 4, 6)]


def test_checkpointed_conv_stem_frees_its_stride_2_map_after_forward():
    """The stem's one checkpoint segment keeps the image and the three outputs, not the
    stride-2 map (the next stage's input, which a checkpoint per stage would keep)."""
    for checkpointed in (False, True):
        stem = ConvStem(embed_dim=64, use_act_checkpoint=checkpointed).train()
        stride_2_maps = []
        stem.proj[0].register_forward_hook(lambda module, inputs, output: stride_2_maps.append(weakref.ref(output)))
        maps = stem(torch.randn(1, 3, 64, 96))
        gc.collect()
        assert (stride_2_maps[0]() is None) == checkpointed
        sum(m.square().mean() for m in maps).backward()
        assert all(p.grad is not None for p in stem.parameters())


@pytest.mark.parametrize(
    "config, params_m, num_keys",
    [
        # Reference README: 127.96M; measured on the reference: 127.95M and 330 keys.
        (BASE, 127.96, 330),
        (LARGE, 349.33, None),
    ],
)
def test_full_size_detector_matches_the_reference(config, params_m, num_keys):
    with torch.device("meta"):
        model = instantiate(LazyConfig.load(config).model)
    assert num_params(model) / 1e6 == pytest.approx(params_m, rel=0.005)
    state = model.state_dict()
    if num_keys is not None:
        assert len(state) == num_keys
        # Names and shapes of the reference's release checkpoint.
        expected = {
            "backbone.bottom_up.encoder.pos_embed": (1, 2501, 768),
            "backbone.bottom_up.encoder.patch_embed.proj.3.3.weight": (768, 768, 1, 1),
            "backbone.bottom_up.encoder.blocks.11.mlp.fc2.weight": (768, 3072),
            "backbone.bottom_up.decoder.decoder_pos_embed": (1, 2501, 512),
            "backbone.bottom_up.decoder.conv_feat_proj.weight": (512, 768),
            "backbone.bottom_up.decoder.decoder_blocks.3.attn.qkv.weight": (1536, 512),
            "backbone.fpn_lateral2.norm.running_var": (256,),
            "roi_heads.box_head.conv4.norm.weight": (256,),
            "roi_heads.mask_head.mask_fcn4.norm.bias": (256,),
        }
        assert {k: tuple(state[k].shape) for k in expected} == expected
        assert is_mimdet_checkpoint(state)


def test_bs16_variant_is_the_v1_model():
    cfg = LazyConfig.load(BASE_BS16)
    assert cfg.model.backbone.bottom_up.sample_ratio == 0.25
    assert cfg.model.backbone.bottom_up.test_sample_ratio == 1.0
    assert cfg.dataloader.train.total_batch_size == 16
    assert cfg.train.max_iter == 270000
    with torch.device("meta"):
        bottom_up = instantiate(cfg.model.backbone.bottom_up)
    assert bottom_up.decoder.mask_token.shape == (1, 1, 512)
    assert not hasattr(bottom_up.decoder, "conv_feat_proj")


def test_recipe_of_the_base_config():
    cfg = LazyConfig.load(BASE)
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (8e-5, 0.1)
    assert cfg.train.max_iter == 67500 and cfg.dataloader.train.total_batch_size == 64
    assert list(cfg.lr_multiplier.scheduler.milestones) == [50625, 61875]
    bottom_up = cfg.model.backbone.bottom_up
    assert (bottom_up.sample_ratio, bottom_up.test_sample_ratio) == (0.5, 1.0)
    assert LazyConfig.load(LARGE).optimizer.params.lr_factor_func.keywords["encoder_lr_multiplier"] == 3.5

    model = tiny_detector()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["backbone.bottom_up.encoder.patch_embed.proj.0.0.weight"])] == (8e-5, 0.1)
    assert lr_of[id(named["backbone.bottom_up.encoder.blocks.0.attn.qkv.weight"])] == (4e-5, 0.1)
    assert lr_of[id(named["backbone.bottom_up.decoder.decoder_blocks.0.attn.qkv.weight"])] == (1.6e-4, 0.1)
    assert lr_of[id(named["roi_heads.box_predictor.cls_score.weight"])] == (1.6e-4, 0.1)
    # No weight decay on biases and norms, as in the reference.
    assert lr_of[id(named["backbone.bottom_up.encoder.blocks.0.attn.qkv.bias"])] == (4e-5, 0.0)
    # The MAE position embeddings are fixed.
    assert id(named["backbone.bottom_up.encoder.pos_embed"]) not in lr_of
    assert mimdet_lr_factor("backbone.fpn_output2.weight", 3.5) == 3.5


# ---- sampling ---------------------------------------------------------------


@pytest.mark.parametrize("ratio, kept", [(0.25, 6), (0.3, 7), (0.5, 12), (1.0, 24)])
def test_kept_token_count(ratio, kept):
    encoder = tiny_backbone().encoder.train()
    out = encoder(torch.randn(2, 3, 64, 96), ratio)  # 4 x 6 = 24 tokens
    assert out["kept"].shape == (2, kept)
    assert out["latent"].shape == (2, kept, WIDTH)
    assert all(len(set(row.tolist())) == kept for row in out["kept"])


def test_sampling_drops_padding_first_and_is_seeded():
    encoder = tiny_backbone().encoder.train()
    images = torch.randn(2, 3, 64, 96)
    # The second image is 40 x 40: ceil(40 / 16) = 3 x 3 of the 4 x 6 tokens are image.
    sizes = [(64, 96), (40, 40)]
    image_tokens = {row * 6 + col for row in range(3) for col in range(3)}

    torch.manual_seed(1)
    kept = encoder(images, 0.25, sizes)["kept"]  # 6 of 9 image tokens
    assert set(kept[1].tolist()) < image_tokens
    kept = encoder(images, 0.5, sizes)["kept"]  # 12: all 9 image tokens, 3 of padding
    assert set(kept[1].tolist()) > image_tokens

    torch.manual_seed(7)
    first = encoder(images, 0.5, sizes)["kept"]
    torch.manual_seed(7)
    again = encoder(images, 0.5, sizes)["kept"]
    assert torch.equal(first, again)
    assert not torch.equal(first[0], encoder(images, 0.5, sizes)["kept"][0])


def test_detector_hands_image_sizes_to_the_backbone():
    model = tiny_detector(sample_ratio=0.25).train()
    inputs = [{"image": torch.zeros(3, 64, 96)}, {"image": torch.zeros(3, 40, 40)}]
    model.preprocess_image(inputs)
    assert model.backbone.bottom_up._pending_image_sizes == [(64, 96), (40, 40)]
    torch.manual_seed(0)
    model.backbone(torch.zeros(2, 3, 64, 96))
    assert model.backbone.bottom_up._pending_image_sizes is None  # used once


def test_bad_ratio_and_input_size_are_refused():
    with pytest.raises(ValueError, match="sample ratio"):
        tiny_backbone(sample_ratio=0.0)
    with pytest.raises(ValueError, match="not a multiple of 16"):
        tiny_backbone()(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match="unkept_token_fill"):
        tiny_backbone(unkept_token_fill="zeros")


# ---- numerics -----------------------------------------------------------------


def timm_blocks(ours, dim, heads):
    """timm's ViT block (the reference's) with the weights and LayerNorm eps of ``ours``
    (timm's Block now defaults to eps 1e-6; the model's eps comes from its config)."""
    norm_layer = partial(nn.LayerNorm, eps=ours[0].norm1.eps)
    blocks = nn.ModuleList(TimmBlock(dim, heads, qkv_bias=True, norm_layer=norm_layer) for _ in ours)
    blocks.load_state_dict(ours.state_dict())
    return blocks.eval()


def pos_grid(pos_embed, hw):
    """(1, 1 + S * S, C) -> (1, H * W, C): cls slot dropped, grid resized bicubically."""
    side = math.isqrt(pos_embed.shape[1] - 1)
    grid = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    return F.interpolate(grid, size=hw, mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)


def reference_features(backbone, images, kept=None):
    """c2-c5 built by hand from the backbone's own modules, with timm's blocks.

    The encoder runs on exactly the tokens at ``kept`` ((B, K) grid positions; all of
    them when None). The decoder puts its output back at those positions and fills
    the others with the decoder's fill (ConvStem feature or mask token). Tokens are
    picked and put back by plain indexing, not by the backbone's gather / scatter.
    """
    encoder, decoder = backbone.encoder, backbone.decoder
    c2, c3, stem16 = encoder.patch_embed(images)
    batch, _, height, width = stem16.shape
    hw = (height, width)
    if kept is None:
        kept = torch.arange(height * width).expand(batch, -1)
    rows = torch.arange(batch)[:, None]
    stem_tokens = stem16.flatten(2).transpose(1, 2)
    x = (stem_tokens + pos_grid(encoder.pos_embed, hw))[rows, kept]
    for block in timm_blocks(encoder.blocks, WIDTH, 2):
        x = block(x)
    latent = decoder.decoder_embed(encoder.norm(x))
    if decoder.unkept_token_fill == "conv_feature":
        tokens = decoder.conv_feat_proj(stem_tokens)
    else:
        tokens = decoder.mask_token.expand(batch, height * width, DECODER_WIDTH).clone()
    tokens[rows, kept] = latent
    x = tokens + pos_grid(decoder.decoder_pos_embed, hw)
    for block in timm_blocks(decoder.decoder_blocks, DECODER_WIDTH, 2):
        x = block(x)
    c4 = decoder.decoder_norm(x).transpose(1, 2).reshape(batch, DECODER_WIDTH, height, width)
    return {"c2": c2, "c3": c3, "c4": c4, "c5": F.max_pool2d(c4, 2)}


@pytest.mark.parametrize("unkept_token_fill", ["conv_feature", "mask_token"])
def test_eval_at_ratio_one_equals_full_token_computation(unkept_token_fill):
    backbone = tiny_backbone(unkept_token_fill, sample_ratio=0.25).eval()
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = backbone(images, image_sizes=[(64, 96), (40, 40)])
        reference = reference_features(backbone, images)
        c4, c5 = reference["c4"], reference["c5"]
        assert torch.allclose(out["c4"], c4, rtol=0, atol=1e-6)
        assert torch.allclose(out["c5"], c5, rtol=0, atol=1e-6)
        # Training at ratio 1.0 computes the same; at 0.25 the encoder sees a quarter.
        backbone.train()
        backbone.sample_ratio = 1.0
        assert torch.allclose(backbone(images)["c4"], c4, rtol=0, atol=1e-6)
        backbone.sample_ratio = 0.25
        assert not torch.allclose(backbone(images)["c4"], c4, atol=1e-3)
    strides = {k: 96 // v.shape[-1] for k, v in out.items()}
    assert strides == {"c2": 4, "c3": 8, "c4": 16, "c5": 32}
    assert {k: v.shape[1] for k, v in out.items()} == {
        k: s.channels for k, s in backbone.output_shape().items()
    } == {"c2": 8, "c3": 16, "c4": DECODER_WIDTH, "c5": DECODER_WIDTH}


# 12 of the 24 tokens of a 64 x 96 batch (ratio 0.5), ascending as sample_kept_tokens
# returns them. Image 0 has no padding: a scattered set. Image 1 is 40 x 40: its 9
# image tokens (rows and columns 0-2 of the 4 x 6 grid) and 3 padding ones.
FIXED_KEPT = torch.tensor([
    [0, 3, 4, 7, 8, 10, 13, 15, 17, 18, 21, 23],
    [0, 1, 2, 5, 6, 7, 8, 12, 13, 14, 17, 22],
])


@pytest.mark.parametrize("unkept_token_fill", ["conv_feature", "mask_token"])
def test_training_at_ratio_half_equals_hand_built_partial_token_computation(unkept_token_fill, monkeypatch):
    """The encoder sees exactly the kept tokens and the decoder fills the others:
    c2-c5 against a reference built from the same modules with fixed kept positions."""
    calls = []

    def fixed_sample(valid, num_keep):
        calls.append((valid.clone(), num_keep))
        return FIXED_KEPT.clone()

    monkeypatch.setattr(mimdet_backbone, "sample_kept_tokens", fixed_sample)
    backbone = tiny_backbone(unkept_token_fill, sample_ratio=0.5).train()
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = backbone(images, image_sizes=[(64, 96), (40, 40)])
        reference = reference_features(backbone, images, FIXED_KEPT)
        full = reference_features(backbone, images)
    (valid, num_keep), = calls
    assert num_keep == 12
    assert valid[0].all() and set(valid[1].nonzero()[:, 0].tolist()) == {0, 1, 2, 6, 7, 8, 12, 13, 14}
    for name in ("c2", "c3", "c4", "c5"):
        assert out[name].shape == reference[name].shape, name
        assert torch.allclose(out[name], reference[name], rtol=0, atol=1e-6), (name, (out[name] - reference[name]).abs().max())
    # Which tokens the encoder saw matters: the full-token c4 is another map.
    assert not torch.allclose(full["c4"], reference["c4"], atol=1e-2)


def test_padding_aware_sampling_keeps_only_image_tokens():
    """Over many draws and image sizes: while an image has enough image tokens, only
    those are kept; past that, all of them and the fewest padding tokens."""
    sizes = [(64, 96), (40, 40), (17, 90), (64, 1)]
    valid = valid_token_mask(sizes, (4, 6), len(sizes), "cpu")
    # ceil(h / 16) x ceil(w / 16) tokens touch the image: 4 x 6, 3 x 3, 2 x 6, 4 x 1.
    assert valid.sum(1).tolist() == [24, 9, 12, 4]
    assert set(valid[1].nonzero()[:, 0].tolist()) == {0, 1, 2, 6, 7, 8, 12, 13, 14}
    assert set(valid[3].nonzero()[:, 0].tolist()) == {0, 6, 12, 18}
    first_draws = set()
    for seed in range(20):
        torch.manual_seed(seed)
        for num_keep in (1, 3, 6, 12, 20, 24):
            kept = sample_kept_tokens(valid, num_keep)
            assert kept.shape == (len(sizes), num_keep)
            for row in range(len(sizes)):
                picked = kept[row]
                assert torch.equal(picked, picked.sort().values) and picked.unique().numel() == num_keep
                assert valid[row, picked].sum() == min(num_keep, int(valid[row].sum())), (seed, num_keep, row)
        first_draws.add(tuple(sample_kept_tokens(valid, 3)[1].tolist()))
    assert len(first_draws) > 1  # random, not the first valid positions


@pytest.mark.parametrize("unkept_token_fill", ["conv_feature", "mask_token"])
def test_gradients_reach_stem_encoder_and_decoder(unkept_token_fill):
    images = torch.randn(2, 3, 64, 96)
    grads = []
    for act_checkpoint in (False, True):
        backbone = tiny_backbone(unkept_token_fill, act_checkpoint, sample_ratio=0.5).train()
        torch.manual_seed(3)
        sum(v.square().mean() for v in backbone(images).values()).backward()
        grads.append({n: p.grad for n, p in backbone.named_parameters() if p.requires_grad})
    plain, checkpointed = grads
    fill = "conv_feat_proj.weight" if unkept_token_fill == "conv_feature" else "mask_token"
    for name in ("encoder.patch_embed.proj.0.0.weight", "encoder.blocks.0.attn.qkv.weight",
                 "encoder.norm.weight", "decoder.decoder_blocks.1.mlp.fc2.weight", f"decoder.{fill}"):
        assert plain[name] is not None and plain[name].abs().sum() > 0, name
    # Activation checkpointing changes memory, not maths.
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)


def seeded_sync_batch_norm(num_channels):
    """sync_batch_norm with the same random affine parameters in every process."""
    norm = sync_batch_norm(num_channels)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(num_channels, generator=generator) + 0.5)
        norm.bias.copy_(torch.randn(num_channels, generator=generator))
    return norm.train()


def sync_batch_norm_rank(rank, batch, store, result_dir):
    """One of two gloo processes: normalise this rank's half of ``batch``, save the result."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        norm = seeded_sync_batch_norm(batch.shape[1])
        output = norm(batch.chunk(2)[rank])
        torch.save({"type": type(norm), "output": output.detach(), "running_mean": norm.running_mean,
                    "running_var": norm.running_var}, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_sync_batch_norm_over_two_gloo_processes_uses_whole_batch_statistics(tmp_path):
    torch.manual_seed(0)
    # The halves differ in mean and spread: per-process statistics would give other outputs.
    batch = torch.cat([torch.randn(2, 8, 5, 5), 3 + 2 * torch.randn(2, 8, 5, 5)])
    # Forked, not spawned: a spawned process imports detectron2 again (15 s on a busy machine).
    processes = torch.multiprocessing.start_processes(
        sync_batch_norm_rank, args=(batch, tmp_path / "store", str(tmp_path)), nprocs=2, join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + 120
    try:
        while not processes.join(timeout=1):  # re-raises a rank's error
            assert time.monotonic() < deadline, "the two SyncBN processes did not finish in 120 s"
    finally:
        for process in processes.processes:
            process.kill()
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(2)]

    whole = seeded_sync_batch_norm(8)  # one process: plain BatchNorm over the whole batch
    expected = whole(batch).detach()
    assert all(result["type"] is NaiveSyncBatchNorm for result in ranks)  # CPU: detectron2's, not torch's
    assert torch.allclose(torch.cat([result["output"] for result in ranks]), expected, rtol=0, atol=1e-5)
    # detectron2's sync branch moves running_var towards the biased batch variance;
    # torch's BatchNorm, in one process, towards the unbiased one.
    momentum, count = whole.momentum, batch.numel() / batch.shape[1]
    biased_var = (whole.running_var - (1 - momentum)) / momentum * (count - 1) / count
    for result in ranks:
        assert torch.allclose(result["running_mean"], whole.running_mean, rtol=0, atol=1e-6)
        assert torch.allclose(result["running_var"], (1 - momentum) + momentum * biased_var, rtol=0, atol=1e-5)


# ---- MAE checkpoints ----------------------------------------------------------


def mae_state_dict(with_decoder, encoder_depth=2, decoder_depth=3):
    """An MAE ViT/16 checkpoint at 224 px: 14 x 14 grids plus a cls slot (tiny widths)."""
    torch.manual_seed(5)
    state = {
        "cls_token": torch.randn(1, 1, WIDTH),
        "pos_embed": torch.randn(1, 197, WIDTH),
        "patch_embed.proj.weight": torch.randn(WIDTH, 3, 16, 16),
        "patch_embed.proj.bias": torch.randn(WIDTH),
        "norm.weight": torch.randn(WIDTH),
        "norm.bias": torch.randn(WIDTH),
    }
    for i in range(encoder_depth):
        state.update(vit_block_state(f"blocks.{i}.", WIDTH))
    if with_decoder:
        state.update({
            "mask_token": torch.randn(1, 1, DECODER_WIDTH),
            "decoder_embed.weight": torch.randn(DECODER_WIDTH, WIDTH),
            "decoder_embed.bias": torch.randn(DECODER_WIDTH),
            "decoder_pos_embed": torch.randn(1, 197, DECODER_WIDTH),
            "decoder_norm.weight": torch.randn(DECODER_WIDTH),
            "decoder_norm.bias": torch.randn(DECODER_WIDTH),
            "decoder_pred.weight": torch.randn(16 * 16 * 3, DECODER_WIDTH),
            "decoder_pred.bias": torch.randn(16 * 16 * 3),
        })
        for i in range(decoder_depth):
            state.update(vit_block_state(f"decoder_blocks.{i}.", DECODER_WIDTH))
    return state


def read_mae_file(tmp_path, state):
    """Write ``state`` as MAE does (``{"model": ...}``) and read it back unwrapped."""
    path = tmp_path / "mae.pth"
    torch.save({"model": state, "epoch": 1599}, path)
    return unwrap_state_dict(torch.load(path, weights_only=True))


def load_through_checkpointer(model, state, tmp_path):
    path = tmp_path / "converted.pth"
    torch.save({"model": state}, path)
    checkpointer = RecordingCheckpointer(model)
    checkpointer.load(str(path))
    return set(checkpointer.incompatible.missing_keys), set(checkpointer.incompatible.unexpected_keys)


@pytest.mark.parametrize("unkept_token_fill", ["conv_feature", "mask_token"])
def test_full_mae_checkpoint_initialises_encoder_and_decoder(unkept_token_fill, tmp_path):
    mae = read_mae_file(tmp_path, mae_state_dict(with_decoder=True))
    assert is_mae_full_checkpoint(mae) and not is_mae_checkpoint(mae)
    model = tiny_detector(unkept_token_fill)
    converted = convert_mae_full_checkpoint(mae, model)
    missing, unexpected = load_through_checkpointer(model, converted, tmp_path)
    assert unexpected == set()
    # Everything MAE has no counterpart for stays random: the ConvStem, the fill
    # projection, the FPN and the heads. The encoder and the decoder are all loaded.
    assert not any(k.startswith(("backbone.bottom_up.encoder.blocks", "backbone.bottom_up.encoder.norm",
                                 "backbone.bottom_up.decoder.decoder_")) for k in missing)
    fill_key = "backbone.bottom_up.decoder." + (
        "conv_feat_proj.weight" if unkept_token_fill == "conv_feature" else "mask_token")
    assert (fill_key in missing) == (unkept_token_fill == "conv_feature")

    state = model.state_dict()
    assert torch.equal(state["backbone.bottom_up.encoder.blocks.1.attn.qkv.weight"], mae["blocks.1.attn.qkv.weight"])
    assert torch.equal(state["backbone.bottom_up.decoder.decoder_blocks.1.mlp.fc1.weight"],
                       mae["decoder_blocks.1.mlp.fc1.weight"])
    # 14 x 14 -> the model's 4 x 4 grid (64 px), bicubic; the cls slot is kept.
    for ours, theirs, width in (("encoder.pos_embed", "pos_embed", WIDTH),
                                ("decoder.decoder_pos_embed", "decoder_pos_embed", DECODER_WIDTH)):
        loaded = state["backbone.bottom_up." + ours]
        grid = mae[theirs][:, 1:].reshape(1, 14, 14, width).permute(0, 3, 1, 2)
        expected = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False)
        assert torch.allclose(loaded[:, 1:], expected.flatten(2).transpose(1, 2), atol=1e-6)
        assert torch.equal(loaded[:, :1], mae[theirs][:, :1])


def test_encoder_only_mae_checkpoint_needs_an_explicit_opt_in(tmp_path, caplog):
    mae = read_mae_file(tmp_path, mae_state_dict(with_decoder=False))
    assert is_mae_checkpoint(mae) and not is_mae_full_checkpoint(mae)
    model = tiny_detector()
    with pytest.raises(ValueError, match=r"only the encoder.*decoder_embed.*NaN.*#7 and #26.*_full\.pth.*allow_random_decoder"):
        convert_mae_checkpoint(mae, model)

    model = tiny_detector(allow_random_decoder=True)
    with caplog.at_level(logging.WARNING):
        converted = convert_mae_checkpoint(mae, model)
    assert "decoder stays at random init" in caplog.text
    assert not any(".decoder." in k for k in converted)
    missing, unexpected = load_through_checkpointer(model, converted, tmp_path)
    assert unexpected == set()
    assert "backbone.bottom_up.encoder.blocks.0.attn.qkv.weight" not in missing


def test_mae_checkpoint_of_another_width_is_refused(tmp_path):
    mae = read_mae_file(tmp_path, mae_state_dict(with_decoder=True))
    model = tiny_detector()
    model.backbone.bottom_up.encoder.pos_embed.data = torch.zeros(1, 17, 2 * WIDTH)
    with pytest.raises(ValueError, match="32 wide but the MIMDet encoder is 64"):
        convert_mae_checkpoint(mae, model)


def test_release_style_checkpoint_loads_with_no_missing_or_unexpected_keys(tmp_path):
    trained = tiny_detector("mask_token")
    assert is_mimdet_checkpoint(trained.state_dict())
    missing, unexpected = load_through_checkpointer(
        tiny_detector("mask_token"), trained.state_dict(), tmp_path
    )
    assert missing == set() and unexpected == set()


# ---- training -----------------------------------------------------------------


def shapes_batch(num_images=2, size=64):
    """Images with two filled rectangles each, and their boxes, classes and masks."""
    generator = torch.Generator().manual_seed(4)
    batch = []
    for _ in range(num_images):
        image = torch.randint(0, 60, (3, size, size), generator=generator).float()
        instances = Instances((size, size))
        corners = torch.randint(0, size // 2, (2, 2), generator=generator)
        boxes = torch.cat([corners, corners + torch.randint(12, size // 2, (2, 2), generator=generator)], 1)
        masks = torch.zeros(2, size, size, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            masks[i, y0:y1, x0:x1] = True
            image[:, y0:y1, x0:x1] = torch.tensor([200.0, 40.0, 90.0])[:, None, None] * (i + 1) / 2
        instances.gt_boxes = Boxes(boxes.float())
        instances.gt_classes = torch.tensor([0, 1])
        instances.gt_masks = BitMasks(masks)
        batch.append({"image": image, "instances": instances})
    return batch


def test_short_training_run_lowers_the_loss():
    """A few AdamW steps of the (shrunk) demo detector on a fixed batch: the loss falls."""
    model = tiny_detector().train()
    batch = shapes_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    with EventStorage():
        for _ in range(12):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    # Token and RoI sampling make single steps noisy: compare averages, and the best step.
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.85 * first and min(losses) < 0.6 * losses[0], losses


def test_yacs_backbone_registry_entry():
    cfg = get_cfg()
    add_mimdet_config(cfg)
    cfg.MODEL.MIMDET.merge_from_list(["IMG_SIZE", 64, "EMBED_DIM", WIDTH, "DEPTH", 1, "NUM_HEADS", 2,
                                      "DECODER_EMBED_DIM", DECODER_WIDTH, "DECODER_DEPTH", 1, "DECODER_NUM_HEADS", 2])
    backbone = BACKBONE_REGISTRY.get("build_mimdet_fpn_backbone")(cfg, ShapeSpec(channels=3))
    features = backbone.eval()(torch.randn(1, 3, 64, 96))
    assert {k: tuple(v.shape[-2:]) for k, v in features.items()} == {
        "p2": (16, 24), "p3": (8, 12), "p4": (4, 6), "p5": (2, 3), "p6": (1, 2)
    }
