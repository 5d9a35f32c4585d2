"""LayerNorm2d: detectron2's "LN" maths, and the input's memory format kept (a
channels-last result made the next conv's backward 3.5x slower on the CPU)."""
import pytest
import torch
from detectron2.layers.batch_norm import LayerNorm as D2LayerNorm

from d2backbones.layers import LayerNorm2d


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layer_norm2d_equals_detectron2s_and_keeps_the_memory_format(memory_format):
    generator = torch.Generator().manual_seed(0)
    ours, theirs = LayerNorm2d(8), D2LayerNorm(8)
    theirs.weight.data.uniform_(0.5, 1.5, generator=generator)
    theirs.bias.data.uniform_(-0.5, 0.5, generator=generator)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 8, 5, 7, generator=generator).contiguous(memory_format=memory_format)
    grads = {}
    for name, norm in (("ours", ours), ("detectron2", theirs)):
        inputs = x.clone().requires_grad_()
        out = norm(inputs)
        assert out.is_contiguous(memory_format=memory_format), name
        (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
        grads[name] = (out.detach(), inputs.grad)
    torch.testing.assert_close(grads["ours"][0], grads["detectron2"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads["ours"][1], grads["detectron2"][1], rtol=1e-4, atol=1e-4)
