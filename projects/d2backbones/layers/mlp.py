"""Transformer MLP (fc1 -> activation -> fc2) that stores less for the backward pass.

A plain MLP keeps both the pre-activation ``fc1(x)`` and the activation ``act(fc1(x))``
(fc2's input) for backward: two (..., hidden) tensors, 4x the width of the block. Here
``act`` and ``fc2`` run as one autograd function that keeps only the pre-activation and
recomputes the activation (an elementwise op, cheap next to the matmuls) in backward.
At 1024 px that is 48 MiB less per ViT-B block (4096 x 3072 floats).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class _ActivationLinear(torch.autograd.Function):
    """``F.linear(act(hidden), weight, bias)``, saving ``hidden`` but not ``act(hidden)``.

    Inputs: hidden (..., H), weight (C, H), bias (C,) or None, act (callable).
    Output: (..., C). Under autocast the matmul runs in ``hidden``'s dtype, as
    ``F.linear`` would; gradients come back in each input's own dtype.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, act):
        ctx.act = act
        ctx.save_for_backward(hidden, weight, bias)
        return F.linear(act(hidden), weight.to(hidden.dtype), None if bias is None else bias.to(hidden.dtype))

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias = ctx.saved_tensors
        with torch.enable_grad():
            hidden_leaf = hidden.detach().requires_grad_()
            activated = ctx.act(hidden_leaf)
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        grad_weight = (grad_2d.t() @ activated.detach().reshape(-1, activated.shape[-1]).to(grad_out.dtype)).to(weight.dtype)
        grad_bias = None if bias is None else grad_2d.sum(0).to(bias.dtype)
        grad_activated = grad_out @ weight.to(grad_out.dtype)
        (grad_hidden,) = torch.autograd.grad(activated, hidden_leaf, grad_activated.to(activated.dtype))
        return grad_hidden, grad_weight, grad_bias, None


class Mlp(nn.Module):
    """fc1 -> activation -> fc2 over the last dimension: (..., C) -> (..., C).

    Parameter names (``fc1``, ``fc2``) match timm's and detectron2's ``Mlp``, so their
    checkpoints load unchanged; the output and gradients are the same as theirs.
    """

    def __init__(self, in_features, hidden_features, act_layer=nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        hidden = self.fc1(x)
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            return _ActivationLinear.apply(hidden, self.fc2.weight, self.fc2.bias, self.act)
        return self.fc2(self.act(hidden))
