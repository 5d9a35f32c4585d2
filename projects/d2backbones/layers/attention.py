"""Multi-head self-attention with decomposed relative position (MViTv2 / ViTDet).

The attention logits of ViTDet are

    logits[(i, j), (k, l)] = scale * q_ij . k_kl + q_ij . Rh[i, k] + q_ij . Rw[j, l]

where (i, j) and (k, l) are query and key positions on an H x W token grid and
Rh, Rw are per-axis relative-position embeddings. detectron2 builds this as an
explicit (B*heads, N, N) tensor and keeps several such tensors for the backward
pass: at 1024 px a ViT-B global block (N = 4096) holds gigabytes of them. Every
form below computes the same attention exactly (to float rounding):

- ``"explicit"``: detectron2's form, one (B, heads, N, N) logits tensor.
- ``"fold"``: the two rel-pos terms are dot products with one-hot keys, so they
  fold into wider queries and keys,
  ``q' = [scale * q, q.Rh, q.Rw]`` and ``k' = [k, onehot(k_row), onehot(k_col)]``,
  and ``F.scaled_dot_product_attention(q', k', v, scale=1)`` is the same
  attention. PyTorch's fused (flash) kernels need v as wide as q', so v is
  zero-padded; then no N x N tensor exists, forward or backward, at the price of
  (head_dim + H + W) / head_dim times the attention matmul work.
- ``"mask"``: the rel-pos terms as SDPA's additive ``attn_mask`` (N x N).
- ``"blockwise"``: the explicit arithmetic over cache-sized blocks of query rows,
  with a hand-written backward that recomputes each block's probabilities
  (:mod:`d2backbones.layers.blockwise_attention`). No N x N tensor exists, and the
  matmul work is the explicit form's plus one ``q k^T``.

``"auto"`` picks per call, from measurements (``benchmarks/attention_modes.py``,
figures in BENCHMARKS.md): on the CPU the blockwise form, the fastest and leanest
there for windows and global blocks alike (0.71x detectron2's time for a ViT-B
global block at 1024 px, 0.90x for a window); on other devices, whose fused SDPA
kernels make the fold cheap, the fold from :data:`AUTO_FOLD_MIN_TOKENS` tokens up
and the explicit form below.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blockwise_attention import blockwise_rel_pos_attention

REL_POS_MODES = ("auto", "explicit", "fold", "mask", "blockwise")
# Off the CPU, "auto" folds at or above this many tokens per attention call: below it
# (windows of 196 tokens, global blocks up to 512 px) the explicit form's N x N
# tensors are at most tens of MB; from a ViT-B global block at 1024 px (N = 4096)
# they are gigabytes.
AUTO_FOLD_MIN_TOKENS = 2048


def get_rel_pos(q_size, k_size, rel_pos):
    """Relative-position embeddings for every (query, key) pair along one axis.

    Args:
        q_size (int): number of query positions on this axis.
        k_size (int): number of key positions on this axis.
        rel_pos (Tensor): (L, C) table; linearly resized to 2 * max(q_size, k_size) - 1
            entries when its length differs (e.g. a table trained at another window size).

    Returns:
        Tensor: (q_size, k_size, C).
    """
    num_distances = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != num_distances:
        rel_pos = F.interpolate(rel_pos.t()[None], size=num_distances, mode="linear")[0].t()
    # Positions of the shorter axis are stretched so both axes span the same range.
    q_stretch = max(k_size / q_size, 1.0)
    k_stretch = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * q_stretch
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * k_stretch
    distance = q_coords - k_coords + (k_size - 1) * k_stretch
    return rel_pos[distance.long()]


class Attention(nn.Module):
    """Multi-head attention over a (B, H, W, C) token map, optional decomposed rel-pos.

    Parameter names (``qkv``, ``proj``, ``rel_pos_h``, ``rel_pos_w``) match detectron2's
    ViTDet ``Attention``, so its checkpoints load unchanged.
    """

    def __init__(
        self,
        dim,
        num_heads=8,
        qkv_bias=True,
        use_rel_pos=False,
        rel_pos_zero_init=True,
        input_size=None,
        rel_pos_mode="auto",
    ):
        """
        Args:
            dim (int): channels of the token map.
            num_heads (int): attention heads; ``dim`` must divide evenly.
            qkv_bias (bool): learnable bias on the q, k, v projections.
            use_rel_pos (bool): add decomposed relative-position terms.
            rel_pos_zero_init (bool): zero-initialise the rel-pos tables.
            input_size (tuple[int, int]): token grid the rel-pos tables are sized for.
            rel_pos_mode (str): how the rel-pos attention is computed: "auto" (measured
                choice by device and token count), "explicit", "fold", "mask" or
                "blockwise"; all exact, see the module docstring.
        """
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        if rel_pos_mode not in REL_POS_MODES:
            raise ValueError(f"rel_pos_mode must be one of {REL_POS_MODES}, got {rel_pos_mode!r}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.rel_pos_mode = rel_pos_mode

        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("input_size is required when use_rel_pos=True")
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x):
        """
        Args:
            x (Tensor): (B, H, W, C) tokens.

        Returns:
            Tensor: (B, H, W, C).
        """
        batch, height, width, channels = x.shape
        num_tokens = height * width
        # (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)

        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attend = {
                "explicit": self._explicit_attention,
                "fold": self._folded_attention,
                "mask": self._masked_attention,
                "blockwise": self._blockwise_attention,
            }[self.resolved_mode(num_tokens, x.device)]
            out = attend(q, k, v, (height, width))

        out = out.transpose(1, 2).reshape(batch, height, width, channels)
        return self.proj(out)

    def resolved_mode(self, num_tokens, device):
        """The rel-pos form used for ``num_tokens`` tokens per attention call on ``device``."""
        if torch.jit.is_tracing():
            # Tracing (fvcore's FLOP count, export) sees the plain matmuls, not a Python autograd Function.
            return "explicit"
        if self.rel_pos_mode != "auto":
            return self.rel_pos_mode
        if torch.device(device).type == "cpu":
            return "blockwise"
        return "fold" if num_tokens >= AUTO_FOLD_MIN_TOKENS else "explicit"

    def _rel_pos_terms(self, q, hw):
        """q (B, heads, N, d) -> rel_h (B, heads, H, W, H) and rel_w (B, heads, H, W, W)."""
        height, width = hw
        r_h = get_rel_pos(height, height, self.rel_pos_h)
        r_w = get_rel_pos(width, width, self.rel_pos_w)
        grid_q = q.reshape(*q.shape[:2], height, width, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, r_h)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, r_w)
        return rel_h, rel_w

    def _explicit_attention(self, q, k, v, hw):
        batch, heads, num_tokens, _ = q.shape
        rel_h, rel_w = self._rel_pos_terms(q, hw)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        logits = logits.view(*rel_h.shape, hw[1]) + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)
        return logits.view(batch, heads, num_tokens, num_tokens).softmax(dim=-1) @ v

    def _masked_attention(self, q, k, v, hw):
        batch, heads, num_tokens, _ = q.shape
        rel_h, rel_w = self._rel_pos_terms(q, hw)
        bias = (rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).reshape(batch, heads, num_tokens, num_tokens)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

    def _blockwise_attention(self, q, k, v, hw):
        batch, heads, num_tokens, _ = q.shape
        rel_h, rel_w = (term.reshape(batch, heads, num_tokens, -1) for term in self._rel_pos_terms(q, hw))
        return blockwise_rel_pos_attention(q * self.scale, k, v, rel_h, rel_w)

    def _folded_attention(self, q, k, v, hw):
        height, width = hw
        batch, heads, num_tokens, head_dim = q.shape
        rel_h, rel_w = self._rel_pos_terms(q, hw)
        q_wide = torch.cat(
            [q * self.scale, rel_h.reshape(batch, heads, num_tokens, height),
             rel_w.reshape(batch, heads, num_tokens, width)],
            dim=-1,
        )
        rows = torch.arange(height, device=q.device).repeat_interleave(width)
        cols = torch.arange(width, device=q.device).repeat(height)
        onehots = torch.cat([F.one_hot(rows, height), F.one_hot(cols, width)], dim=-1).to(k.dtype)
        k_wide = torch.cat([k, onehots.expand(batch, heads, -1, -1)], dim=-1)
        # The fused (flash) kernels take v only as wide as q'; narrower v falls back to
        # the math kernel, which would build the N x N tensor this form exists to avoid.
        v_wide = F.pad(v, (0, q_wide.shape[-1] - head_dim))
        return F.scaled_dot_product_attention(q_wide, k_wide, v_wide, scale=1.0)[..., :head_dim]
