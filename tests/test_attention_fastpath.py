"""Fast rel-pos attention forms: exact against explicit attention, no N x N tensor where promised."""
from functools import partial

import pytest
import torch
from conftest import act_checkpoint_pair, max_rel_err
from fvcore.nn import FlopCountAnalysis

from d2backbones.layers import Attention, blockwise_attention
from d2backbones.layers.attention import AUTO_FOLD_MIN_TOKENS, REL_POS_MODES
from d2backbones.vitdet import ViT

GRID = (5, 7)  # non-square, so a swapped height/width would show


def explicit_attention(attention, x):
    """ViTDet attention written out: softmax(scale q k^T + q.Rh + q.Rw) v, from the parameters."""
    batch, height, width, channels = x.shape
    heads, n = attention.num_heads, height * width
    q, k, v = attention.qkv(x).reshape(batch, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    rows, cols = torch.arange(height), torch.arange(width)
    r_h = attention.rel_pos_h[rows[:, None] - rows[None, :] + height - 1]  # (H, H, d)
    r_w = attention.rel_pos_w[cols[:, None] - cols[None, :] + width - 1]  # (W, W, d)
    q_grid = q.reshape(batch, heads, height, width, -1)
    bias = torch.einsum("bnhwd,hkd->bnhwk", q_grid, r_h)[..., :, None] + torch.einsum(
        "bnhwd,wld->bnhwl", q_grid, r_w
    )[..., None, :]
    logits = attention.scale * q @ k.transpose(-2, -1) + bias.reshape(batch, heads, n, n)
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, height, width, channels)
    return attention.proj(out)


def make_attention(mode):
    torch.manual_seed(0)
    return Attention(48, num_heads=3, use_rel_pos=True, rel_pos_zero_init=False, input_size=GRID, rel_pos_mode=mode)


def outputs_and_grads(attention, x, forward):
    attention.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = forward(attention, x)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return [out.detach(), x.grad] + [p.grad for p in attention.parameters()]


@pytest.mark.parametrize("mode", REL_POS_MODES)
def test_every_mode_matches_explicit_attention_values_and_gradients(mode):
    x = torch.randn(2, *GRID, 48, generator=torch.Generator().manual_seed(1))
    attention = make_attention(mode)
    expected = outputs_and_grads(attention, x, explicit_attention)
    actual = outputs_and_grads(attention, x, lambda module, inputs: module(inputs))
    names = ["output", "input grad"] + [name for name, _ in attention.named_parameters()]
    for name, a, e in zip(names, actual, expected):
        assert max_rel_err(a, e) <= 1e-5, name


def test_fold_runs_the_fused_kernel_not_the_n_by_n_math_kernel():
    attention = make_attention("fold")
    x = torch.randn(1, *GRID, 48, requires_grad=True)
    with torch.profiler.profile() as profile:
        attention(x).sum().backward()
    ops = {event.key for event in profile.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ops
    assert "aten::_scaled_dot_product_flash_attention_for_cpu_backward" in ops
    assert "aten::_softmax" not in ops  # the math kernel's (N, N) softmax


def test_auto_picks_blockwise_on_cpu_and_fold_for_large_global_blocks_elsewhere():
    attention = make_attention("auto")
    for num_tokens in (14 * 14, 32 * 32, 64 * 64):  # ViTDet window, global at 512 and 1024 px
        assert attention.resolved_mode(num_tokens, "cpu") == "blockwise"
    assert attention.resolved_mode(14 * 14, "cuda") == "explicit"
    assert attention.resolved_mode(32 * 32, "cuda") == "explicit"
    assert attention.resolved_mode(64 * 64, "cuda") == "fold"
    assert attention.resolved_mode(AUTO_FOLD_MIN_TOKENS, "cuda") == "fold"
    attention.rel_pos_mode = "mask"
    assert attention.resolved_mode(64 * 64, "cpu") == "mask"


def test_blockwise_over_many_uneven_blocks_matches_explicit_and_keeps_no_n_by_n_tensor(monkeypatch):
    # 35 keys, blocks of 8 query rows of one (batch, head) pair: 5 row blocks, the last
    # one short, and 6 head blocks.
    monkeypatch.setattr(blockwise_attention, "BLOCK_ELEMENTS", 8 * 35)
    x = torch.randn(2, *GRID, 48, generator=torch.Generator().manual_seed(1))
    attention = make_attention("blockwise")
    expected = outputs_and_grads(attention, x, explicit_attention)
    with torch.profiler.profile(record_shapes=True) as profile:
        actual = outputs_and_grads(attention, x, lambda module, inputs: module(inputs))
    names = ["output", "input grad"] + [name for name, _ in attention.named_parameters()]
    for name, a, e in zip(names, actual, expected):
        assert max_rel_err(a, e) <= 1e-5, name
    num_tokens = GRID[0] * GRID[1]
    last_two_dims = [shape[-2:] for event in profile.key_averages(group_by_input_shape=True)
                     for shape in event.input_shapes]
    assert [8, num_tokens] in last_two_dims  # the profile does see the blocks
    assert [num_tokens, num_tokens] not in last_two_dims


def test_fvcore_counts_the_attention_matmuls_in_every_mode():
    height, width = GRID
    n, channels, heads = height * width, 48, 3
    head_dim = channels // heads
    linears = n * channels * 3 * channels + n * channels * channels
    attention_matmuls = 2 * heads * n * n * head_dim
    rel_pos_einsums = heads * n * (height + width) * head_dim
    expected = linears + attention_matmuls + rel_pos_einsums
    x = torch.randn(1, *GRID, channels)
    for mode in ("fold", "blockwise", "auto"):
        flops = FlopCountAnalysis(make_attention(mode), (x,)).unsupported_ops_warnings(False)
        assert flops.total() == expected, mode


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="rel_pos_mode must be one of"):
        Attention(48, num_heads=3, rel_pos_mode="flash")


def test_activation_checkpointing_gives_the_same_gradients_with_folded_global_blocks():
    kwargs = dict(img_size=96, patch_size=16, embed_dim=48, depth=3, num_heads=3, window_size=3,
                  window_block_indexes=[0, 2], use_rel_pos=True, rel_pos_zero_init=False,
                  pretrain_img_size=64, rel_pos_mode="fold")
    torch.manual_seed(0)
    plain, checkpointed = act_checkpoint_pair(partial(ViT, **kwargs))
    x = torch.randn(1, 3, 96, 112)
    grads = []
    for model in (plain, checkpointed):
        model(x)["last_feat"].square().mean().backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert max_rel_err(grads[1][name], grad) <= 1e-5, name


def test_blockwise_computes_half_precision_inputs_in_float32():
    generator = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 35, 16, generator=generator) for _ in range(3))
    rel_h, rel_w = torch.randn(1, 2, 35, 5, generator=generator), torch.randn(1, 2, 35, 7, generator=generator)
    half = [t.to(torch.bfloat16) for t in (q, k, v, rel_h, rel_w)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = blockwise_attention.blockwise_rel_pos_attention(*half)
    expected = blockwise_attention.blockwise_rel_pos_attention(*[t.float() for t in half])
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected.to(torch.bfloat16))
