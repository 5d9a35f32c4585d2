"""Exact attention with a decomposed relative-position bias, computed in blocks.

ViTDet's logits are ``S = q k^T + bias`` with ``bias[n, (i, j)] = rel_h[n, i] + rel_w[n, j]``
for a key at row i, column j of an H x W grid. Autograd through the explicit form keeps
the (B, heads, N, N) probabilities for backward and allocates several more N x N
tensors; on a CPU that memory traffic, not the matmuls, is most of a ViT-B global
block's attention time at 1024 px. Here the forward pass visits blocks of query rows
small enough to stay in cache and saves only the inputs and the output; the backward
pass recomputes each block's probabilities (one extra ``q k^T``) and forms every
gradient from them. Memory is O(N) per head; on a CPU a ViT-B global block's attention
at 1024 px takes 0.71x the time and 0.12x the memory of detectron2's (BENCHMARKS.md).
"""
import torch

__all__ = ["blockwise_rel_pos_attention"]

# Logit elements per block: 8 MB of float32, small enough to stay in a CPU's cache
# while the bias, softmax and gradient passes run over it.
BLOCK_ELEMENTS = 2**21


def _blocks(num_batch_heads, num_queries, num_keys):
    """Yield (batch-head slice, query slice) pairs covering every logit once."""
    rows = max(1, min(num_queries, BLOCK_ELEMENTS // num_keys))
    heads = max(1, BLOCK_ELEMENTS // (rows * num_keys))
    for h in range(0, num_batch_heads, heads):
        for r in range(0, num_queries, rows):
            yield slice(h, h + heads), slice(r, r + rows)


def _probabilities(q, k, rel_h, rel_w, heads, rows):
    """Softmax of one block of logits: (h, r, N)."""
    logits = torch.bmm(q[heads, rows], k[heads].transpose(1, 2))
    grid = logits.view(*logits.shape[:2], rel_h.shape[-1], rel_w.shape[-1])
    grid.add_(rel_h[heads, rows, :, None]).add_(rel_w[heads, rows, None, :])
    return torch.softmax(logits, dim=-1)


class _BlockwiseRelPosAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, rel_h, rel_w):
        out = torch.empty_like(q)
        for heads, rows in _blocks(q.shape[0], q.shape[1], k.shape[1]):
            torch.bmm(_probabilities(q, k, rel_h, rel_w, heads, rows), v[heads], out=out[heads, rows])
        ctx.save_for_backward(q, k, v, rel_h, rel_w, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, rel_h, rel_w, out = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        # softmax backward: dS = P * (dP - rowsum(dO * O)), since rowsum(P * dP) = rowsum(dO * O).
        row_dot = (grad_out * out).sum(-1)
        grad_q, grad_rel_h, grad_rel_w = torch.empty_like(q), torch.empty_like(rel_h), torch.empty_like(rel_w)
        grad_k, grad_v = torch.zeros_like(k), torch.zeros_like(v)
        for heads, rows in _blocks(q.shape[0], q.shape[1], k.shape[1]):
            probs = _probabilities(q, k, rel_h, rel_w, heads, rows)
            grad_v[heads].baddbmm_(probs.transpose(1, 2), grad_out[heads, rows])
            grad_logits = torch.bmm(grad_out[heads, rows], v[heads].transpose(1, 2))
            grad_logits.sub_(row_dot[heads, rows, None]).mul_(probs)
            grid = grad_logits.view(*grad_logits.shape[:2], rel_h.shape[-1], rel_w.shape[-1])
            torch.sum(grid, dim=-1, out=grad_rel_h[heads, rows])
            torch.sum(grid, dim=-2, out=grad_rel_w[heads, rows])
            torch.bmm(grad_logits, k[heads], out=grad_q[heads, rows])
            grad_k[heads].baddbmm_(grad_logits.transpose(1, 2), q[heads, rows])
        return grad_q, grad_k, grad_v, grad_rel_h, grad_rel_w


def blockwise_rel_pos_attention(q, k, v, rel_h, rel_w):
    """``softmax(q k^T + rel_h + rel_w) v`` over an H x W key grid, without N x N tensors.

    Args:
        q (Tensor): (B, heads, N, d) queries, already multiplied by the softmax scale.
        k, v (Tensor): (B, heads, N, d) keys and values, keys in row-major grid order.
        rel_h (Tensor): (B, heads, N, H) bias of each query for each key row.
        rel_w (Tensor): (B, heads, N, W) bias of each query for each key column.

    Returns:
        Tensor: (B, heads, N, d), in the dtype of ``q``; computed in float32 (or float64
        for float64 inputs).
    """
    batch, heads, num_tokens, head_dim = q.shape
    if rel_h.shape[-1] * rel_w.shape[-1] != k.shape[-2]:
        raise ValueError(
            f"rel_h and rel_w describe a {rel_h.shape[-1]} x {rel_w.shape[-1]} key grid, "
            f"but there are {k.shape[-2]} keys"
        )

    # At least float32 throughout, as autocast runs a softmax; the blocks' in-place
    # passes and preallocated outputs need one dtype, so autocast is off inside.
    dtype = torch.promote_types(q.dtype, torch.float32)

    def flat(t):
        return t.to(dtype).reshape(batch * heads, *t.shape[2:]).contiguous()

    with torch.autocast(device_type=q.device.type, enabled=False):
        out = _BlockwiseRelPosAttention.apply(flat(q), flat(k), flat(v), flat(rel_h), flat(rel_w))
    return out.view(batch, heads, num_tokens, head_dim).to(q.dtype)
