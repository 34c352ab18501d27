"""Layers shared by every model family: the attention core with its capture point, MLP, drop path, input checks.

Every attention of every family computes ``softmax(q·kᵀ·scale + bias)·v`` in :class:`AttentionCore`. That one
module is where the fused kernel (``F.scaled_dot_product_attention``; in bfloat16 inference on a CPU whose native
bfloat16 products it cannot use, :func:`blocked_attention`; in float32 inference of large (group, head) pairs where
oneDNN's products are the faster, :func:`pairwise_attention`) or the explicit softmax path is chosen, where the
inspection engine captures probabilities, and where attention MACs are counted, whatever the attention kind
(joint, divided space/time, windows, pooled).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_KINDS = ("space", "time", "joint", "window", "pooled", "cross")


@dataclass(frozen=True)
class AttentionLayout:
    """Where the tokens of one attention call sit on the video's token grid, so a figure can lay them back.

    ``groups`` and ``tokens`` are einops patterns over the axes ``b`` (batch), ``t``, ``h``, ``w`` (the token
    grid ``grid`` = (T, H, W)) and, for windows, ``nw`` (window index) and ``wt wh ww`` (position in a window).
    ``q_grid``/``kv_grid`` are the (T, H, W) grids of queries and keys when they differ (pooled attention).
    Cross-attention (kind ``"cross"``, V-JEPA 2's attentive pooler) has ``queries`` learned query tokens that
    sit on no grid cell; its keys are the grid's tokens, laid out by ``groups``/``tokens``.
    """

    kind: str
    grid: tuple[int, int, int]
    groups: str
    tokens: str
    cls: bool = False
    q_grid: tuple[int, int, int] | None = None
    kv_grid: tuple[int, int, int] | None = None
    window: tuple[int, int, int] | None = None
    shift: tuple[int, int, int] | None = None
    padded_grid: tuple[int, int, int] | None = None
    queries: int | None = None


@dataclass(frozen=True)
class GroupedBias:
    """An additive attention bias that is constant over runs of groups: the first ``sizes[0]`` groups all take
    ``parts[0]`` ``(1, heads, N_q, N_k)``, the next ``sizes[1]`` take ``parts[1]``, and so on.

    Shifted windows are the case: a window's bias is the relative position bias plus the mask of the regions the
    roll joined in it, and windows at the same place relative to the roll have the same mask. The fused path
    runs one kernel per run, broadcasting its bias, instead of writing and reading a ``(G, heads, N_q, N_k)``
    bias (the largest tensor of a Swin block)."""

    parts: tuple[Tensor, ...]
    sizes: tuple[int, ...]
    #: each group's index in the ``(b nw)`` order of the call's :class:`AttentionLayout` (the call orders its groups
    #: by run); a gradient sink receives its blocks in the layout's order
    groups: Tensor | None = None

    def dense(self) -> Tensor:
        """The whole ``(G, heads, N_q, N_k)`` bias."""
        return torch.cat([p.expand(n, *p.shape[1:]) for p, n in zip(self.parts, self.sizes)])


@dataclass(frozen=True)
class FactoredBias:
    """An additive attention bias given as the product of two thin factors: ``rows (G, heads, N_q, r) @ cols
    (r, N_k)``, with ``r`` far below ``N_k``.

    MViTv2's decomposed relative positions are the case (each query's ``r`` terms, and a 0/1 matrix that hands
    each key its terms). Where the bias needs a gradient (relevance propagates through it to the queries), the
    backward pass (:func:`attention_backward`) takes the factors as ``r`` more columns of ``q·scale`` and of ``k``:
    the logits and ``∇rows = ∇S·colsᵀ`` come out of the products it computes anyway, and the dense bias and its
    gradient are never written."""

    rows: Tensor
    cols: Tensor

    def dense(self) -> Tensor:
        """The whole ``(G, heads, N_q, N_k)`` bias."""
        return self.rows @ self.cols


def _add_bias(attn: Tensor, bias: Tensor | GroupedBias) -> Tensor:
    """``attn + bias``. Where the sum keeps the logits' dtype it is added in place, a run of windows at a time for
    a :class:`GroupedBias`: no second ``(G, heads, N_q, N_k)`` matrix, nor a dense bias, is made (the logits are
    not kept for a backward pass: the product that made them keeps its operands). Elsewhere (a float32 bias on
    bfloat16 logits) the sum is promoted, as ``attn + bias`` promotes it."""
    parts = bias.parts if isinstance(bias, GroupedBias) else (bias,)
    if any(torch.result_type(attn, p) != attn.dtype for p in parts):
        return attn + (bias.dense() if isinstance(bias, GroupedBias) else bias)
    if not isinstance(bias, GroupedBias):
        return attn.add_(bias)
    start = 0
    for part, n in zip(bias.parts, bias.sizes):
        attn[start:start + n] += part
        start += n
    return attn


@dataclass
class CapturedAttention:
    """Softmax probabilities exactly as the network computed them, with where their tokens sit."""

    probs: Tensor  # (groups, heads, N_q, N_k)
    layout: AttentionLayout

    @property
    def kind(self) -> str:
        return self.layout.kind


class AttentionCore(nn.Module):
    """``softmax(q·kᵀ·scale + bias)·v`` for ``q (G, heads, N_q, d)``, ``k (G, heads, N_k, d)``, ``v (G, heads, N_k, d_v)``.

    ``bias`` is an additive term broadcastable to ``(G, heads, N_q, N_k)`` (relative positions, window masks), a
    :class:`GroupedBias` or a :class:`FactoredBias`. Runs the fused kernel unless ``fused`` is off or a ``sink`` is
    set; with a sink, the probabilities are handed to it as a :class:`CapturedAttention`. Both paths compute the
    same function. With ``capture_graph`` on, the captured probabilities stay in the autograd graph (not
    detached), so explanations can take the gradient of a logit with respect to them; the forward's numbers are
    the same either way.

    A ``gradient_sink`` (relevance propagation) asks for ``∇A ⊙ A``, the gradient of the backward pass's output
    with respect to the probabilities times the probabilities, without keeping the probabilities: while autograd
    records, the core runs the fused kernel and its backward (:func:`attention_backward`) recomputes ``A`` a block
    of rows at a time, hands each block's ``∇A ⊙ A`` to the sink and takes the gradients of ``q``, ``k``, ``v``
    (and of a bias that needs one) from the same block. The sink is called at the forward with the call's layout
    and ``(G, heads, N_q, N_k)``, and returns the function that receives ``(groups, rows, ∇A ⊙ A)`` blocks (each
    block once, its tensor the function's to overwrite; ``groups`` a slice, or the groups' indices in the layout's
    order where the call orders them otherwise, see :class:`GroupedBias`).
    """

    def __init__(self, kind: str, scale: float, attn_drop: float = 0.0):
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention kind must be one of {ATTENTION_KINDS}, got {kind!r}")
        self.kind = kind
        self.scale = scale
        self.attn_drop = attn_drop
        self.fused = True
        self.sink: Callable[[CapturedAttention], None] | None = None
        self.capture_graph = False
        self.gradient_sink: GradientSink | None = None

    def extra_repr(self) -> str:
        return f"kind={self.kind}, scale={self.scale:.4g}, fused={self.fused}"

    def forward(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | GroupedBias | None = None,
                layout: AttentionLayout | None = None) -> Tensor:
        drop = self.attn_drop if self.training else 0.0
        layout = layout or AttentionLayout(self.kind, (0, 0, 0), "", "")
        if self.gradient_sink is not None and self.sink is None and torch.is_grad_enabled() and not drop:
            blocks = self.gradient_sink(layout, (*q.shape[:3], k.shape[2]))
            if isinstance(bias, GroupedBias) and bias.groups is not None:
                blocks = functools.partial(_in_layout_order, blocks, bias.groups)
            if isinstance(bias, GroupedBias) and any(p.requires_grad for p in bias.parts):
                bias = bias.dense()  # its gradient flows through a tensor argument
            # the bias's tensor argument (where its gradient flows): a dense bias, or a factored bias's rows
            tensor = bias.rows if isinstance(bias, FactoredBias) else None if isinstance(bias, GroupedBias) else bias
            structured = bias if isinstance(bias, (GroupedBias, FactoredBias)) else None
            return _AttentionWithGradients.apply(q, k, v, tensor, structured, self, blocks, _GRAPH_START)
        if isinstance(bias, FactoredBias):
            bias = bias.dense()
        if self.fused and self.sink is None:
            return self.fused_attention(q, k, v, bias, drop)
        # the (N_q, d) queries scaled rather than the (N_q, N_k) logits: one pass over the big matrix less (the
        # same numbers when the scale is a power of two, as at head width 16, 64 or 256)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (G, heads, N_q, N_k)
        if bias is not None:
            attn = _add_bias(attn, bias)
        if attn.device.type == "cpu" and not attn.requires_grad:
            # in place, row by row: no second N_q × N_k buffer to allocate and fault in (the CPU kernel reads each
            # row before it writes it; 0.6-0.7× the time of the explicit path at 1568 tokens)
            attn = torch.ops.aten._softmax.out(attn, -1, False, out=attn)
        else:
            attn = attn.softmax(dim=-1)
        if self.sink is not None:
            self.sink(CapturedAttention(attn if self.capture_graph else attn.detach(), layout))
        attn = F.dropout(attn, drop) if drop else attn
        return attn @ v

    def fused_attention(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | GroupedBias | None,
                        drop: float = 0.0) -> Tensor:
        """The fused kernel (``F.scaled_dot_product_attention``) or, where it is the slower, :func:`blocked_attention`
        or :func:`pairwise_attention` (:meth:`_kernel`); one call per run of a :class:`GroupedBias`."""
        if isinstance(bias, GroupedBias):
            return self._fused_grouped(q, k, v, bias, drop)
        return self._kernel(q, k, v, None if bias is None else bias.to(q.dtype), drop)

    def _kernel(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, drop: float) -> Tensor:
        """:func:`blocked_attention` in bfloat16 inference on a CPU where the fused kernel is slow in bfloat16,
        :func:`pairwise_attention` in float32 inference of large pairs where oneDNN's products are the faster, else
        the fused kernel."""
        if not drop and _takes_blocked_attention(q, k, v):
            return blocked_attention(q, k, v, bias, self.scale)
        if not drop and _takes_pairwise_attention(q, k, v):
            return pairwise_attention(q, k, v, bias, self.scale)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop, scale=self.scale)

    def _fused_grouped(self, q: Tensor, k: Tensor, v: Tensor, bias: GroupedBias, drop: float) -> Tensor:
        """:meth:`_kernel` on each run of groups with its own bias; the results side by side."""
        parts, start = [], 0
        for part, size in zip(bias.parts, bias.sizes):
            end = start + size
            parts.append(self._kernel(q[start:end], k[start:end], v[start:end], part.to(q.dtype), drop).transpose(1, 2))
            start = end
        # (G, N_q, heads, d) in memory, as the fused CPU kernel lays out its own output: heads merge as a view
        return torch.cat(parts).transpose(1, 2)


#: one block of logits in :func:`blocked_attention`: a few MiB (the fastest at ViT-B/L's and MViTv2's shapes)
_LOGIT_BLOCK_BYTES = 4 << 20


@functools.cache
def fused_attention_slow_in_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 products natively (:func:`onednn_bfloat16`) without AMX tiles, which the
    fused attention kernel's own bfloat16 products need (without them it takes as long in bfloat16 as in float32:
    AVX-512 BF16 alone, as on AMD's Zen 4 and 5). False where PyTorch cannot tell."""
    try:
        amx = bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # no way to tell: keep the fused kernel
        return False
    return not amx and onednn_bfloat16()


def _takes_blocked_attention(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether :func:`blocked_attention` takes an attention: bfloat16 inference outside ``torch.compile`` (as for
    oneDNN's linear, :func:`_onednn_call`) on a CPU where the fused kernel is slow in bfloat16
    (:func:`fused_attention_slow_in_bfloat16`)."""
    return _onednn_call(q, k) and v.dtype == q.dtype and fused_attention_slow_in_bfloat16()


def blocked_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float) -> Tensor:
    """``softmax(q·kᵀ·scale + bias)·v`` as bfloat16 matrix products, a few MiB of logits at a time: the query rows
    of one (group, head) in blocks where its logits are larger, else several whole (group, head) pairs.

    Where the CPU has native bfloat16 products but no AMX tiles (:func:`fused_attention_slow_in_bfloat16`),
    PyTorch's fused kernel takes as long in bfloat16 as in float32 (ViT-B at 1568 tokens on an AMD EPYC with
    AVX-512 BF16, 2 threads: 47 ms a layer either way); these products take about half that. The logits are rounded
    to bfloat16 before the softmax (the fused kernel keeps them in float32), which moves whole models' logits by no
    more than their bfloat16 weights and activations already do (``bench/dtype.py`` prints both). The output has
    the fused kernel's ``(G, N_q, heads, d_v)`` memory, so that the heads merge as a view."""
    groups, heads, n_q, _ = q.shape
    n_k = k.shape[2]
    unit = max(1, n_q * n_k * q.element_size())  # the logits of one (group, head)
    if unit > _LOGIT_BLOCK_BYTES:  # one pair's rows in blocks
        blocks = -(-unit // _LOGIT_BLOCK_BYTES)
        return _attention_by_rows(q, k, v, bias, scale, rows=-(-n_q // blocks), onednn=False)
    out = q.new_empty(groups, n_q, heads, v.shape[-1]).transpose(1, 2)
    qs, kt = q * scale, k.transpose(-2, -1)
    if bias is not None:
        bias = bias[(None,) * (4 - bias.dim())]
    per_heads = min(heads, _LOGIT_BLOCK_BYTES // unit)
    per_groups = max(1, _LOGIT_BLOCK_BYTES // (unit * heads)) if per_heads == heads else 1
    for g0 in range(0, groups, per_groups):
        gs = slice(g0, g0 + per_groups)
        for h0 in range(0, heads, per_heads):
            hs = slice(h0, h0 + per_heads)
            logits = qs[gs, hs] @ kt[gs, hs]
            if bias is not None:
                logits += _bias_block(bias, gs, slice(None), hs)
            torch.ops.aten._softmax.out(logits, -1, False, out=logits)
            out[gs, hs] = logits @ v[gs, hs]
    return out


#: float32 attention whose (group, head) pairs each take at least this many multiply-adds (N_q·N_k·d) runs as
#: :func:`pairwise_attention` where oneDNN's products are the faster; smaller ones (Swin's windows) keep the fused
#: kernel
_PAIR_MACS = 1 << 24


def _takes_pairwise_attention(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether :func:`pairwise_attention` takes a float32 attention: inference on the CPU outside ``torch.compile``
    (:func:`inference`), pairs of at least :data:`_PAIR_MACS` multiply-adds, where oneDNN's float32 products are
    the faster (:func:`onednn_float32_faster`)."""
    return (q.dtype == k.dtype == v.dtype == torch.float32 and q.device.type == "cpu" and inference()
            and q.shape[2] * k.shape[2] * q.shape[3] >= _PAIR_MACS and onednn_float32_faster())


def pairwise_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float) -> Tensor:
    """``softmax(q·kᵀ·scale + bias)·v`` as oneDNN's float32 products, one (group, head) pair and a few MiB of
    logits at a time.

    Where PyTorch's BLAS runs float32 products at half the speed of oneDNN (:func:`onednn_float32_faster`: AMD
    CPUs), its fused kernel does too: on an AMD EPYC (Zen 5, 2 threads) these take 0.60-0.65× its time for pairs
    of 39-270 M multiply-adds (ViT-B/L at 784-2048 tokens, MViTv2's pooled stages), about as long at Swin's
    5 M (which keeps the fused kernel, :data:`_PAIR_MACS`). Every sum is float32, as in the fused kernel; the
    softmax takes each row's exact maximum where the kernel takes a running one (≈ 1e-7 relative). The output
    has the fused kernel's ``(G, N_q, heads, d_v)`` memory, so that the heads merge as a view."""
    rows = max(1, min(q.shape[2], _LOGIT_BLOCK_BYTES // max(1, k.shape[2] * q.element_size())))
    return _attention_by_rows(q, k, v, bias, scale, rows, onednn=True)


def _attention_by_rows(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float, rows: int,
                       onednn: bool) -> Tensor:
    """``softmax(q·kᵀ·scale + bias)·v`` one (group, head) pair and ``rows`` query rows at a time, as PyTorch's
    products or (``onednn``) oneDNN's linear; the output in the fused kernel's ``(G, N_q, heads, d_v)`` memory."""
    groups, heads, n_q, _ = q.shape
    out = q.new_empty(groups, n_q, heads, v.shape[-1]).transpose(1, 2)
    if bias is not None:
        bias = bias[(None,) * (4 - bias.dim())]
    for g in range(groups):
        for h in range(heads):
            qs = q[g, h] * scale
            if onednn:  # its weights contiguous: it runs a strided one through a reference kernel, 100s of times slower
                keys, values_t = k[g, h].contiguous(), v[g, h].t().contiguous()
            for r0 in range(0, n_q, rows):
                rs = slice(r0, r0 + rows)
                logits = _onednn_linear(qs[rs], keys, None) if onednn else qs[rs] @ k[g, h].t()
                if bias is not None:
                    logits += _bias_block(bias, slice(g, g + 1), rs, slice(h, h + 1))[0, 0]
                torch.ops.aten._softmax.out(logits, -1, False, out=logits)
                if onednn:
                    out[g, h, rs] = _onednn_linear(logits, values_t, None)
                else:
                    torch.mm(logits, v[g, h], out=out[g, h, rs])
    return out


GradientBlocks = Callable[[slice | Tensor, slice, Tensor], None]
GradientSink = Callable[[AttentionLayout, tuple[int, int, int, int]], GradientBlocks]

_BLOCK_BYTES = 4 << 20  # one block of probabilities in attention_backward: a few MiB, cache-sized


def _in_layout_order(blocks: GradientBlocks, groups: Tensor, these: slice, rows: slice, grad_probs: Tensor) -> None:
    blocks(groups[these], rows, grad_probs)


def _bias_runs(bias: Tensor | GroupedBias | None, groups: int) -> list[tuple[int, int, Tensor | None]]:
    """``(first group, groups, bias)`` runs: a bias tensor's first axis is 1 (the same for the run) or the run's
    groups (one per group)."""
    if isinstance(bias, GroupedBias):
        starts = [sum(bias.sizes[:i]) for i in range(len(bias.sizes))]
        return list(zip(starts, bias.sizes, bias.parts))
    if bias is not None:
        bias = bias[(None,) * (4 - bias.dim())]
    return [(0, groups, bias)]


def _bias_block(bias: Tensor, groups: slice, rows: slice, heads: slice = slice(None)) -> Tensor:
    """The part of a ``(G or 1, heads or 1, N_q or 1, N_k or 1)`` bias that covers ``groups`` (relative to its
    run), query ``rows`` and ``heads``."""
    return bias[groups if bias.shape[0] > 1 else slice(None), heads if bias.shape[1] > 1 else slice(None),
                rows if bias.shape[2] > 1 else slice(None)]


def _add_product(out: Tensor, a: Tensor, b: Tensor) -> None:
    """``out += a @ b`` over the leading axes, in place (``out`` contiguous)."""
    out.view(-1, *out.shape[-2:]).baddbmm_(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))


def attention_backward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | GroupedBias | FactoredBias | None,
                       scale: float, d_out: Tensor, blocks: GradientBlocks | None = None,
                       needed: tuple[bool, bool, bool, bool] = (True, True, True, False)
                       ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """The gradients of ``softmax(q·kᵀ·scale + bias)·v`` with respect to ``q``, ``k``, ``v`` and the bias (those
    ``needed`` says, else None) given ``d_out``, the output's gradient; ``blocks`` receives ``∇A ⊙ A`` on the way.

    The probabilities are recomputed a block of query rows at a time (a few MiB, so every pass over them stays in
    the cache) and never exist whole: ``A = softmax(q·kᵀ·scale + bias)``, ``∇A = d_out·vᵀ``, ``P = ∇A ⊙ A``;
    ``∇v += Aᵀ·d_out``; the softmax's backward ``∇S = P − A ⊙ Σ_k P``; ``∇q = ∇S·k·scale``, ``∇k += ∇Sᵀ·q·scale``.
    ``blocks(groups, rows, P)`` receives each ``(groups, heads, rows, N_k)`` block once, and may overwrite it.
    A :class:`FactoredBias` rides along as more columns of ``q·scale`` and ``k`` (its gradient is the rows')."""
    groups, heads, n_q, d = q.shape
    n_k = k.shape[2]
    row_bytes = heads * n_k * q.element_size()
    rows_per = max(1, min(n_q, _BLOCK_BYTES // row_bytes))
    groups_per = max(1, _BLOCK_BYTES // (row_bytes * n_q)) if rows_per == n_q else 1
    qs = q * scale
    # contiguous; ∇q is written a block at a time, ∇k and ∇v summed into
    dq, dk, dv = ((torch.empty if t is q else torch.zeros)(t.shape, dtype=t.dtype, device=t.device) if need else None
                  for t, need in zip((q, k, v), needed))
    d_bias = None
    q_logits, k_logits = qs, k  # q_logits·k_logitsᵀ = q·kᵀ·scale (+ a factored bias)
    if isinstance(bias, FactoredBias):
        r = bias.cols.shape[0]
        q_logits = torch.cat((qs, bias.rows.to(q.dtype).expand(groups, heads, n_q, r)), dim=-1)
        k_logits = torch.cat((k, bias.cols.t().to(k.dtype).expand(groups, heads, n_k, r)), dim=-1)
        if needed[3]:
            d_bias = torch.empty(groups, heads, n_q, r, dtype=q.dtype, device=q.device)
        runs, factored = _bias_runs(None, groups), True
    else:
        runs, factored = _bias_runs(bias, groups), False
        if needed[3]:  # written block by block where the bias has every axis, else summed into
            whole = runs[0][2].shape == (groups, heads, n_q, n_k)
            d_bias = (torch.empty if whole else torch.zeros)(runs[0][2].shape, dtype=q.dtype, device=q.device)
    # contiguous once here: a strided k or v (a view of the qkv projection's output) makes PyTorch's bfloat16 batched
    # product copy it on every block (2x the time of the product for videomae_s's blocks)
    k_logits, v = k_logits.contiguous(), v.contiguous()
    kt, vt = k_logits.transpose(-2, -1), v.transpose(-2, -1)
    for start, size, part in runs:
        for g0 in range(start, start + size, groups_per):
            gs = slice(g0, min(g0 + groups_per, start + size))
            local = slice(gs.start - start, gs.stop - start)
            for r0 in range(0, n_q, rows_per):
                rs = slice(r0, min(r0 + rows_per, n_q))
                probs = q_logits[gs, :, rs] @ kt[gs]
                if part is not None:
                    probs += _bias_block(part, local, rs)
                torch.ops.aten._softmax.out(probs, -1, False, out=probs)
                d_o = d_out[gs, :, rs]
                if dv is not None:
                    _add_product(dv[gs], probs.transpose(-2, -1), d_o)
                p = (d_o @ vt[gs]).mul_(probs)  # ∇A ⊙ A
                d_s = torch.addcmul(p, probs, p.sum(-1, keepdim=True), value=-1, out=probs)  # ∇S, in A's place
                if blocks is not None:
                    blocks(gs, rs, p)
                if d_bias is not None and not factored:
                    block = _bias_block(d_bias, local, rs)
                    if whole:
                        block.copy_(d_s)
                    else:
                        block += d_s.sum_to_size(block.shape)
                if dq is not None or (factored and d_bias is not None):
                    d_qr = d_s @ k_logits[gs]  # ∇q (unscaled), then a factored bias's ∇rows
                    if dq is not None:
                        dq[gs, :, rs] = d_qr[..., :d]
                    if factored and d_bias is not None:
                        d_bias[gs, :, rs] = d_qr[..., d:]
                if dk is not None:
                    _add_product(dk[gs], d_s.transpose(-2, -1), qs[gs, :, rs])
    if d_bias is not None:
        d_bias = d_bias.view(bias.rows.shape if factored else bias.shape)
    return None if dq is None else dq.mul_(scale), dk, dv, d_bias


# A leaf that needs a gradient, made an input of every attention that reports ∇A ⊙ A: the attention's output then
# needs one too, so autograd's graph starts at the first such attention, even where nothing before it needs a
# gradient (relevance takes none with respect to the clip).
_GRAPH_START = torch.zeros((), requires_grad=True)


class _AttentionWithGradients(torch.autograd.Function):
    """The fused kernel forward; :func:`attention_backward` (which reports ``∇A ⊙ A``) backward."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None,
                structured: GroupedBias | FactoredBias | None, core: AttentionCore, blocks: GradientBlocks,
                start: Tensor) -> Tensor:
        """``bias``: a dense bias, a :class:`FactoredBias`'s rows (``structured`` is the factored bias), or None."""
        ctx.save_for_backward(q, k, v, bias)
        ctx.cols = structured.cols if isinstance(structured, FactoredBias) else None
        ctx.grouped = structured if isinstance(structured, GroupedBias) else None
        ctx.scale, ctx.blocks = core.scale, blocks
        # detached: PyTorch picks its explicit (math) kernel for a mask that needs a gradient, grad mode or not
        if ctx.grouped is None and bias is not None:
            bias = FactoredBias(bias.detach(), ctx.cols).dense() if ctx.cols is not None else bias.detach()
        return core.fused_attention(q.detach(), k.detach(), v.detach(),
                                    ctx.grouped if ctx.grouped is not None else bias)

    @staticmethod
    def backward(ctx, d_out: Tensor):
        q, k, v, bias = ctx.saved_tensors
        if ctx.cols is not None:
            bias = FactoredBias(bias, ctx.cols)
        grads = attention_backward(q, k, v, ctx.grouped if ctx.grouped is not None else bias, ctx.scale, d_out,
                                   ctx.blocks, tuple(ctx.needs_input_grad[:4]))
        return *grads, None, None, None, None


def set_fused_attention(model: nn.Module, enabled: bool) -> nn.Module:
    """Switch every attention of ``model`` between the fused kernel and the explicit softmax path."""
    for module in model.modules():
        if isinstance(module, AttentionCore):
            module.fused = enabled
    return model


def split_qkv(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """A fused projection's output ``(…, N, 3·heads·d)`` → ``q, k, v``, each ``(…, heads, N, d)``: views, the
    official ``reshape(…, N, 3, heads, d).permute(2, …, 3, 1, 4)``. Split on the projection's own axis, so that the
    backward pass stacks the three gradients straight into the projection's layout (one copy; split after the
    permute, they are stacked and then copied once more: 1.5x the time for mvit_v2_s's first block)."""
    q, k, v = qkv.unflatten(-1, (3, heads, -1)).unbind(-3)
    return q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2)


def cpu_bfloat16_native() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (AMX or AVX-512 BF16: oneDNN's own test)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


@functools.cache
def onednn_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (:func:`cpu_bfloat16_native`) and this PyTorch reaches oneDNN's
    linear (``mkldnn._linear_pointwise``, the op Inductor emits on the CPU)."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and cpu_bfloat16_native())


def _onednn_call(x: Tensor, weight: Tensor) -> bool:
    """Whether a product of ``x`` and ``weight`` goes to oneDNN's linear: bfloat16 on such a CPU, outside
    autograd (the op has no backward) and outside ``torch.compile`` (Inductor picks its own kernels)."""
    return (x.dtype == weight.dtype == torch.bfloat16 and x.device.type == "cpu" and inference()
            and onednn_bfloat16())


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


#: float32 products with fewer rows stay with PyTorch's BLAS (a classifier's one row: oneDNN is slower there)
_ONEDNN_FLOAT32_ROWS = 64


_MEASURING = threading.Lock()  # one measurement at a time: it sets the process's thread count, then restores it


@functools.cache
def onednn_float32_faster() -> bool:
    """Whether oneDNN's linear multiplies float32 matrices clearly (≥ 1.3×) faster than ``F.linear`` here: measured
    once per process on a 256 × 512 · 512 × 512 product, the best of ten calls each, on one thread and in that
    thread's CPU time.

    PyTorch's float32 ``F.linear`` goes to its BLAS (MKL in the PyPI wheels), which takes its AVX2 code on AMD
    CPUs; oneDNN uses their AVX-512 units: on an AMD EPYC (Zen 5, 2 threads) 1.5-2.2× as fast at ViT shapes,
    whole float32 forwards 0.57-0.70× the time with the BLAS's (one process, alternating); on a Zen 4 (whose
    AVX-512 runs at half width) 1.03-1.22×, and the BLAS stays. Where the BLAS is as fast (Intel CPUs), nothing
    changes. Both sum in float32: the products differ in the order of their sums only (≈ 1e-7 relative).

    One thread's CPU time is what the choice rests on because every process on a machine must make the same one
    (the app's server and a command give the same numbers): timed on the wall clock with every thread, a loaded
    machine slows the BLAS's threads more than oneDNN's, and a Zen 4 under load measured oneDNN ≥ 1.3× faster in 8
    processes of 10 and slower in every one when idle."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    generator = torch.Generator().manual_seed(0)
    x, weight = torch.randn(256, 512, generator=generator), torch.randn(512, 512, generator=generator)
    calls = {"blas": lambda: F.linear(x, weight), "onednn": lambda: _onednn_linear(x, weight, None)}
    best = dict.fromkeys(calls, float("inf"))
    with _MEASURING:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                for round_ in range(11):
                    for name, call in calls.items():
                        start = time.thread_time()
                        call()
                        if round_:  # the first round warms both up
                            best[name] = min(best[name], time.thread_time() - start)
        except RuntimeError:  # oneDNN refuses float32 here
            return False
        finally:
            torch.set_num_threads(threads)
    return best["blas"] > 1.3 * best["onednn"]


def _onednn_float32_call(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    """Whether a float32 product of ``x`` and ``weight`` goes to oneDNN's linear: on the CPU, outside
    ``torch.compile``, with at least :data:`_ONEDNN_FLOAT32_ROWS` rows, where oneDNN is the faster
    (:func:`onednn_float32_faster`)."""
    return (x.dtype == weight.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)
            and x.device.type == weight.device.type == "cpu" and x.dim() >= 2 and x.shape[-1] > 0
            and weight.is_contiguous()  # oneDNN runs a strided weight through a reference kernel, 100s of times slower
            and x.numel() >= _ONEDNN_FLOAT32_ROWS * x.shape[-1] and not torch.compiler.is_compiling()
            and onednn_float32_faster())


class _OneDNNLinear(torch.autograd.Function):
    """oneDNN's linear with a backward pass (the op has none): the input's gradient is oneDNN's product with
    the transposed weight; the weight's and bias's, where asked for, come from PyTorch's own ops."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        return _onednn_linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        rows = grad.reshape(-1, grad.shape[-1])
        grad_x = _onednn_linear(grad, weight.t(), None) if needs[0] else None
        grad_weight = rows.t() @ x.reshape(-1, x.shape[-1]) if needs[1] else None
        grad_bias = rows.sum(0) if needs[2] else None
        return grad_x, grad_weight, grad_bias


class Linear(nn.Linear):
    """``nn.Linear`` (the same parameters and state-dict keys) whose call may bring its own bias, and whose
    bfloat16 inference on a CPU with native bfloat16 goes straight to oneDNN's linear, as do its float32 products
    (inference and autograd) where oneDNN is the faster (:func:`onednn_float32_faster`).

    ``bias``, when given, is added instead of the module's (VideoMAE's bias-free qkv projection takes its learned q
    and v biases, around a zero k bias, there: the product adds them rather than another pass over the output).

    ``F.linear`` in bfloat16 on the CPU copies the bias into the output and has oneDNN add the product onto it; the
    oneDNN linear adds the bias as the product is written out: the same numbers on a contiguous input, one rounding
    fewer on a strided one (tests/test_layers.py), 0.7-0.9x the time at ViT-B's shapes (``bench/vs_reference.py
    --dtype bfloat16`` measures whole models)."""

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        bias = self.bias if bias is None else bias
        if _onednn_call(x, self.weight) and (bias is None or bias.dtype == torch.bfloat16):
            return _onednn_linear(x, self.weight, bias)
        if _onednn_float32_call(x, self.weight, bias):
            if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, self.weight, bias)):
                return _OneDNNLinear.apply(x, self.weight, bias)
            return _onednn_linear(x, self.weight, bias)
        return F.linear(x, self.weight, bias)


def watched(*modules: nn.Module) -> bool:
    """Whether a forward hook of these modules, or a global one, would see their calls (layer records, timings)."""
    return (any(m._forward_hooks or m._forward_pre_hooks for m in modules)
            or bool(nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks))


class ComposedLinear:
    """``second(first(x))`` as one linear map, for two :class:`Linear` layers with nothing between them at
    inference: weight ``W₂·W₁``, bias ``W₂·b₁ + b₂``. The composed parameters are derived from the layers' own
    when first asked for, and again whenever either layer's weight or bias is replaced, moved or changed in place
    (``load_state_dict``, an optimizer's step, an in-place operation; not a write through ``.data``, which
    PyTorch does not count); a copy of the model (``copy.deepcopy``, pickling) starts without them.

    Taken only where :meth:`parameters` says so: bfloat16 inference on oneDNN (:func:`_onednn_call`), both layers
    in eval mode (no dropout between them) and unwatched by forward hooks (:func:`watched`), which must see both
    calls. The product is the same map; its numbers differ from two products' by bfloat16 rounding (one rounding of
    the output fewer, one of the composed weight more). Float32 and autograd keep the two layers."""

    __slots__ = ("_key", "_value")

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: tuple[Tensor, Tensor | None] | None = None

    def __deepcopy__(self, memo: dict) -> ComposedLinear:
        return ComposedLinear()

    def __reduce__(self):
        return ComposedLinear, ()

    def parameters(self, x: Tensor, first: nn.Linear, second: nn.Linear) -> tuple[Tensor, Tensor | None] | None:
        """``(weight, bias)`` of ``second ∘ first`` for an input ``x``, or None where the two layers must run."""
        if first.training or second.training or not _onednn_call(x, first.weight) or watched(first, second):
            return None
        tensors = [t for t in (first.weight, first.bias, second.weight, second.bias) if t is not None]
        # inference tensors (made under torch.inference_mode) keep no version to tell a change by
        if any(t.dtype != torch.bfloat16 or t.is_inference() for t in tensors):
            return None
        key = tuple((id(t), t.data_ptr(), t._version, t.device) for t in tensors)
        if key != self._key:
            weight = second.weight @ first.weight  # float32 sums, rounded once
            bias = None
            if first.bias is not None or second.bias is not None:
                bias = torch.zeros(second.out_features, dtype=torch.float32, device=x.device)
                if first.bias is not None:
                    bias += second.weight.float() @ first.bias.float()
                if second.bias is not None:
                    bias += second.bias.float()
                bias = bias.to(torch.bfloat16)
            self._key, self._value = key, (weight, bias)
        return self._value

    @staticmethod
    def apply(x: Tensor, parameters: tuple[Tensor, Tensor | None]) -> Tensor:
        """The composed map on ``x``, given what :meth:`parameters` returned."""
        return _onednn_linear(x, *parameters)


class _PatchConv:
    """A convolution that cuts its input into non-overlapping patches (kernel = stride, no padding), which in
    bfloat16 inference on a CPU with native bfloat16 runs as one matrix product of the patches, laid out
    token-major, with the kernel: the convolution's sums, accumulated in float32 and rounded once (oneDNN's
    convolution takes 5-6x as long for these shapes). The output has the convolution's shape; in memory it is
    channel-last, so flattening its grid into tokens is a view."""

    def forward(self, x: Tensor) -> Tensor:
        return self._patch_product(x) if self._patchified(x) else super().forward(x)

    def _patchified(self, x: Tensor) -> bool:
        kernel = self.kernel_size
        return (_onednn_call(x, self.weight) and self.stride == kernel and self.groups == 1
                and self.padding_mode == "zeros" and not any(self._reversed_padding_repeated_twice) and x.numel() > 0
                and all(d == 1 for d in self.dilation) and x.dim() == len(kernel) + 2
                and all(size % k == 0 for size, k in zip(x.shape[2:], kernel))
                and (self.bias is None or self.bias.dtype == torch.bfloat16))

    def _patch_product(self, x: Tensor) -> Tensor:
        kernel, (b, c, *sizes) = self.kernel_size, x.shape
        cells = [size // k for size, k in zip(sizes, kernel)]
        n = len(kernel)
        x = x.reshape(b, c, *(v for cell, k in zip(cells, kernel) for v in (cell, k)))
        # (b, c, cell₁, k₁, cell₂, k₂, …) → (b, cell₁, cell₂, …, c, k₁, k₂, …): one row per patch, the kernel's order
        patches = x.permute(0, *range(2, 2 + 2 * n, 2), 1, *range(3, 3 + 2 * n, 2)).reshape(b, *cells, -1)
        out = _onednn_linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)
        return out.movedim(-1, 1)


class Conv2d(_PatchConv, nn.Conv2d):
    """``nn.Conv2d``; a patch-cutting one runs as a product in bfloat16 on the CPU (:class:`_PatchConv`)."""


class Conv3d(_PatchConv, nn.Conv3d):
    """``nn.Conv3d``; a patch-cutting one runs as a product in bfloat16 on the CPU (:class:`_PatchConv`)."""


class AvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d`` that also takes bfloat16 and float16 on the CPU, where PyTorch has no such kernel: the
    average is taken in float32 and rounded back to the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


def inference() -> bool:
    """True outside autograd and outside ``torch.compile``: a block may then write into buffers it allocated
    (``out=``, in-place sums), which no backward pass reads, instead of concatenating and rearranging copies.
    (Inductor fuses the plain sums and copies itself, and Dynamo cannot trace a view passed as ``out=``.)"""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling()


class Mlp(nn.Module):
    """Linear → GELU → dropout → Linear → dropout (names ``fc1``/``fc2`` as in timm and the official repos)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 drop: float = 0.0):
        super().__init__()
        self.fc1 = Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training (Huang et al., 2016)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic-depth rates growing linearly from 0 to ``rate`` over ``depth`` blocks."""
    if depth == 1:
        return [0.0]
    return [rate * i / (depth - 1) for i in range(depth)]


def check_video_input(x: Tensor, *, channels: int, multiple_hw: tuple[int, int] = (1, 1), multiple_t: int = 1,
                      min_t: int = 1, min_hw: tuple[int, int] = (1, 1)) -> tuple[int, int, int, int]:
    """Check that ``x`` is a ``(B, C, T, H, W)`` float clip the model can take; return ``(B, T, H, W)``.

    Raises ``ValueError`` stating the expected layout and sizes."""
    expected = (f"expected a float tensor (B, C, T, H, W) with C={channels}, T a multiple of {multiple_t} "
                f"and ≥ {min_t}, H a multiple of {multiple_hw[0]} and ≥ {min_hw[0]}, W a multiple of "
                f"{multiple_hw[1]} and ≥ {min_hw[1]}")
    if not isinstance(x, Tensor) or x.ndim != 5 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{expected}; got {got}")
    b, c, t, h, w = x.shape
    if (c != channels or t < min_t or t % multiple_t or h < min_hw[0] or w < min_hw[1]
            or h % multiple_hw[0] or w % multiple_hw[1]):
        raise ValueError(f"{expected}; got shape {tuple(x.shape)}")
    return b, t, h, w
