"""The lean MLP (activation recomputed in backward) against timm's Mlp."""
import pytest
import torch
from timm.layers import Mlp as TimmMlp

from d2backbones.layers import Mlp


def twin_mlps(dtype=torch.float64):
    torch.manual_seed(0)
    ours = Mlp(16, 64).to(dtype)
    reference = TimmMlp(in_features=16, hidden_features=64).to(dtype)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def forward_backward(module, x):
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = module(x)
    (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).square().sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in module.named_parameters()}


def test_same_keys_output_and_gradients_as_timm():
    ours, reference = twin_mlps()
    assert ours.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(2, 5, 7, 16, dtype=torch.float64)
    out, grad_x, grads = forward_backward(ours, x)
    ref_out, ref_grad_x, ref_grads = forward_backward(reference, x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_x, ref_grad_x, rtol=0, atol=1e-12)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=1e-12)


def test_keeps_only_the_pre_activation_for_backward():
    ours, reference = twin_mlps(torch.float32)
    x = torch.randn(4, 32, 16, requires_grad=True)

    def saved_bytes(module):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            module(x)
        return sum(sizes)

    hidden_bytes = 4 * 32 * 64 * 4
    assert saved_bytes(reference) - saved_bytes(ours) == pytest.approx(hidden_bytes, rel=0.01)


def test_gradients_under_bfloat16_autocast_match_timm():
    ours, reference = twin_mlps(torch.float32)
    x = torch.randn(3, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grad_x, grads = forward_backward(ours, x)
        ref_out, ref_grad_x, ref_grads = forward_backward(reference, x)
    assert out.dtype == ref_out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad_x, ref_grad_x)
    for name, grad in ref_grads.items():
        assert grads[name].dtype == grad.dtype == torch.float32
        torch.testing.assert_close(grads[name], grad, rtol=2e-2, atol=2e-2)
