"""Analytic multiply-accumulate (MAC) counts, per module kind and per attention kind.

The convention is fvcore's (facebookresearch/fvcore, ``fvcore/nn/jit_handles.py``), because the papers' and
the model zoos' "FLOPs" tables were made with it:

- one multiply-add counts 1 (so these are MACs; FLOPs = 2 × MACs is the ``FlopCounterMode`` convention);
- counted: linear (``linear_flop_jit``: ``prod(input.shape) · out_features``), matmul / bmm / einsum
  (``matmul_flop_jit``: ``prod(a.shape) · b.shape[-1]``), convolution (``conv_flop_count``:
  ``batch · prod(weight.shape) · prod(out.shape[2:])``, the weight already divided by ``groups``; transposed:
  the input's spatial size instead of the output's), layer / group / instance norm (``norm_flop_counter``:
  ``5 · numel`` with an affine transform, ``4 · numel`` without), batch norm (``batchnorm_flop_jit``: in eval
  ``2 · numel`` with affine, ``1 · numel`` without; in training as layer norm);
- not counted: softmax, activations, additions, the bias of linear and conv layers, pooling, reshapes.

The attention formulas below are the closed forms of ``q·kᵀ`` (``G·h·N_q·N_k·d``) plus ``attn·v``
(``G·h·N_q·N_k·d_v``) for each way the families group their tokens; with ``h·d = C`` the head count cancels.
:mod:`videoattn_core.inspection` counts each :class:`~videoattn_core.models.layers.AttentionCore` call from its
actual ``q``, ``k``, ``v`` shapes with :func:`attention_macs`; :func:`layout_attention_macs` derives the same
number from the call's :class:`~videoattn_core.models.layers.AttentionLayout`, and the tests check the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..models.layers import AttentionLayout

#: how MACs and FLOPs are counted, as the summaries and pages state it
MACS_CONVENTION = ("multiply-accumulates, fvcore's convention (one multiply-add = 1; linear, matmul/einsum, "
                   "conv and normalization counted; softmax, activations, additions and pooling not) — the "
                   "number papers print as FLOPs")
FLOPS_CONVENTION = "2 × MACs (torch.utils.flop_counter.FlopCounterMode's convention)"

__all__ = [
    "linear_macs", "matmul_macs", "conv_macs", "norm_macs", "batch_norm_macs", "attention_macs",
    "joint_attention_macs", "divided_attention_macs", "window3d_attention_macs", "window_grid",
    "window2d_temporal_attention_macs", "pooled_attention_macs", "layout_attention_macs", "module_macs",
    "NORM_TYPES", "CONV_TYPES",
]

NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _prod(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


# --------------------------------------------------------------------------------------------- module kinds

def linear_macs(input_shape: Sequence[int], out_features: int) -> int:
    """``nn.Linear`` on ``(..., in_features)``: every input element meets ``out_features`` weights
    (fvcore ``linear_flop_jit``)."""
    return _prod(input_shape) * int(out_features)


def matmul_macs(a_shape: Sequence[int], b_shape: Sequence[int]) -> int:
    """``a @ b`` with broadcast batch dimensions: ``prod(batch) · n · k · m`` (fvcore ``matmul_flop_jit``)."""
    *batch_a, n, k = a_shape
    *batch_b, k2, m = b_shape
    if k != k2:
        raise ValueError(f"matmul shapes {tuple(a_shape)} and {tuple(b_shape)} do not fit")
    width = max(len(batch_a), len(batch_b))
    batch_a = [1] * (width - len(batch_a)) + list(batch_a)
    batch_b = [1] * (width - len(batch_b)) + list(batch_b)
    return _prod(max(x, y) for x, y in zip(batch_a, batch_b)) * int(n) * int(k) * int(m)


def conv_macs(input_shape: Sequence[int], weight_shape: Sequence[int], output_shape: Sequence[int],
              transposed: bool = False) -> int:
    """A convolution: ``batch · prod(weight.shape) · prod(out.shape[2:])`` (fvcore ``conv_flop_count``).

    ``weight.shape`` is ``(C_out, C_in / groups, *kernel)``, so grouped and depthwise convolutions count right;
    a transposed convolution runs over the input's spatial positions instead of the output's."""
    spatial = (input_shape if transposed else output_shape)[2:]
    return int(input_shape[0]) * _prod(weight_shape) * _prod(spatial)


def norm_macs(input_shape: Sequence[int], affine: bool = True) -> int:
    """Layer, group and instance norm: ``5 · numel`` with an affine transform, ``4 · numel`` without — fvcore's
    ``norm_flop_counter`` ("5 is just a rough estimate": mean, variance, normalise, scale, shift)."""
    return _prod(input_shape) * (5 if affine else 4)


def batch_norm_macs(input_shape: Sequence[int], affine: bool = True, training: bool = False) -> int:
    """Batch norm (fvcore ``batchnorm_flop_jit``): in eval it is a per-channel scale and shift, ``2 · numel``
    (``1 · numel`` without affine); while training it also computes statistics and counts as layer norm."""
    if training:
        return norm_macs(input_shape, affine)
    return _prod(input_shape) * (2 if affine else 1)


def attention_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """``softmax(q·kᵀ)·v`` for ``q (G, h, N_q, d)``, ``k (G, h, N_k, d)``, ``v (G, h, N_k, d_v)``:
    ``q·kᵀ`` is ``G·h·N_q·N_k·d`` and ``attn·v`` is ``G·h·N_q·N_k·d_v`` (two fvcore matmuls).

    Key/value heads may be fewer than query heads (they are broadcast); the softmax counts zero."""
    *lead, n_q, d = q_shape
    n_k, d_v = k_shape[-2], v_shape[-1]
    rows = _prod(lead) * int(n_q)
    return rows * int(n_k) * int(d) + rows * int(n_k) * int(d_v)


# ------------------------------------------------------------------------------------ attention by kind
# Closed forms, written with the width C = heads · head_dim, as the papers write them. Each covers q·kᵀ and
# attn·v; the qkv and output projections are linear layers and are counted as such.

def joint_attention_macs(batch: int, tokens: int, dim: int) -> int:
    """Joint space-time attention (TimeSformer ``joint_space_time``, ViViT model 1): every one of the N tokens
    (T·H·W patches, plus CLS if present) attends to all N: ``2 · B · N² · C``."""
    return 2 * batch * tokens * tokens * dim


def divided_attention_macs(batch: int, frames: int, patches: int, dim: int, cls: bool = True) -> dict[str, int]:
    """Divided space-time attention (TimeSformer, Bertasius et al. 2021, Fig. 1): temporal attention over the
    T frames at each of the H·W positions, ``2 · B·H·W · T² · C``, then spatial attention within each frame
    over its H·W patches (plus the CLS token, repeated per frame), ``2 · B·T · (H·W + cls)² · C``.

    ``space_only`` is the spatial term alone. Returns ``{"time": ..., "space": ...}``."""
    n = patches + (1 if cls else 0)
    return {"time": 2 * batch * patches * frames * frames * dim,
            "space": 2 * batch * frames * n * n * dim}


def window_grid(grid: Sequence[int], window: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The effective window and the padded grid of Video Swin's 3D windows (Liu et al. 2022,
    SwinTransformer/Video-Swin-Transformer ``get_window_size`` and the padding in ``SwinTransformerBlock3D``):
    a window never exceeds the grid along an axis, and the grid is padded up to a multiple of the window."""
    eff = tuple(min(int(w), int(g)) for g, w in zip(grid, window))
    padded = tuple(math.ceil(int(g) / w) * w for g, w in zip(grid, eff))
    return eff, padded


def window3d_attention_macs(batch: int, grid: Sequence[int], window: Sequence[int], dim: int) -> int:
    """Attention in non-overlapping 3D windows (Video Swin): the (T, H, W) grid is padded to a multiple of the
    window, giving ``nW = prod(padded / window)`` windows of ``M = wt·wh·ww`` tokens each, and every token
    attends within its window: ``2 · B · nW · M² · C``. Padding tokens are computed (and masked), so they count;
    the shift of shifted windows changes which tokens meet, not the cost."""
    eff, padded = window_grid(grid, window)
    windows = _prod(p // w for p, w in zip(padded, eff))
    tokens = _prod(eff)
    return 2 * batch * windows * tokens * tokens * dim


def window2d_temporal_attention_macs(window_tokens: int, frames: int, dim: int, heads: int,
                                     temporal: bool = False) -> int:
    """One 2D window of ``N`` tokens over ``T`` frames, as the seed code's ``WindowAttention.flops(N, T,
    temporal)`` counts it (Swin 2D windows per frame plus attention across frames at each position):

    - spatial (``temporal=False``): per frame, ``q·kᵀ`` is ``heads · N · d · N`` and ``attn·v`` the same:
      ``2 · heads · N² · d · T`` with ``d = dim / heads``;
    - temporal: each of the N positions attends over the T frames: ``2 · dim · N · T²``.

    Multiply by the number of windows (``(H / wh) · (W / ww)``) and the batch for a whole layer."""
    if temporal:
        return dim * window_tokens * frames * frames * 2
    head_dim = dim // heads
    return 2 * heads * window_tokens * head_dim * window_tokens * frames


def pooled_attention_macs(batch: int, q_grid: Sequence[int], kv_grid: Sequence[int], dim: int,
                          cls: bool = True) -> int:
    """Pooled multi-head attention (MViT, Fan et al. 2021, §3.1): queries live on the pooled ``q_grid``, keys and
    values on the pooled ``kv_grid`` (plus the CLS token on both when present): ``2 · B · N_q · N_kv · C``.
    The pooling convolutions and norms are separate modules (counted as conv / norm)."""
    n_q = _prod(q_grid) + (1 if cls else 0)
    n_kv = _prod(kv_grid) + (1 if cls else 0)
    return 2 * batch * n_q * n_kv * dim


def layout_attention_macs(layout: AttentionLayout, batch: int, dim: int, dim_v: int | None = None) -> int:
    """MACs of one attention call from its layout alone, ``dim`` being heads · head_dim of q and k:

    - windows (``window`` set): ``batch · nW`` groups of ``wt·wh·ww`` tokens, ``nW = prod(padded_grid / window)``
      (:func:`window3d_attention_macs`; a 2D window is a window of depth 1);
    - pooled: ``batch`` groups, queries on ``q_grid`` and keys on ``kv_grid`` (:func:`pooled_attention_macs`);
    - otherwise the ``groups``/``tokens`` einops patterns over ``b`` and the ``t h w`` grid (joint, space, time);

    - cross (learned queries): ``groups``/``tokens`` as above for the keys, ``queries`` query tokens;

    plus one CLS token on queries and keys when ``cls``."""
    dim_v = dim if dim_v is None else dim_v
    cls = 1 if layout.cls else 0
    if layout.window is not None:
        padded = layout.padded_grid or window_grid(layout.grid, layout.window)[1]
        groups = batch * _prod(p // w for p, w in zip(padded, layout.window))
        n_q = n_k = _prod(layout.window) + cls
    elif layout.kind == "pooled":
        groups = batch
        n_q = _prod(layout.q_grid or layout.grid) + cls
        n_k = _prod(layout.kv_grid or layout.grid) + cls
    else:
        t, h, w = layout.grid
        sizes = {"b": batch, "t": t, "h": h, "w": w}
        axes = lambda pattern: pattern.replace("(", " ").replace(")", " ").split()  # noqa: E731
        groups = _prod(sizes[a] for a in axes(layout.groups))
        n_q = n_k = _prod(sizes[a] for a in axes(layout.tokens)) + cls
        if layout.kind == "cross":
            n_q = layout.queries or 1
    return groups * n_q * n_k * (dim + dim_v)


# ---------------------------------------------------------------------------------------- per module call

def module_macs(module: nn.Module, inputs: tuple, output: object) -> int | None:
    """The MACs one call of ``module`` does itself (children excluded), from the shapes of that call.

    A module defining ``flop_count(inputs, output) -> int`` reports its own MACs (fvcore convention): that is
    how a family counts arithmetic done outside the standard layers (MViTv2's relative-position einsums,
    FIERY's bilinear resize). Linear, convolution, normalization and attention cores are counted here;
    ``None`` means "not an arithmetic module" (containers, activations, pooling, dropout), which counts zero.
    """
    from ..models.layers import AttentionCore

    custom = getattr(module, "flop_count", None)
    if callable(custom):
        return int(custom(inputs, output))
    if isinstance(module, AttentionCore):
        q, k, v = inputs[:3]
        return attention_macs(q.shape, k.shape, v.shape)
    x = inputs[0] if inputs else None
    if x is None or not hasattr(x, "shape"):
        return None
    if isinstance(module, nn.Linear):
        return linear_macs(x.shape, module.out_features)
    if isinstance(module, CONV_TYPES):
        return conv_macs(x.shape, module.weight.shape, output.shape)
    if isinstance(module, CONV_TRANSPOSE_TYPES):
        return conv_macs(x.shape, module.weight.shape, output.shape, transposed=True)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        # aten.batch_norm's ``training`` flag: batch statistics are used when training or without running stats
        training = module.training or not module.track_running_stats
        return batch_norm_macs(x.shape, module.affine, training)
    if isinstance(module, nn.LayerNorm):
        return norm_macs(x.shape, module.elementwise_affine)
    if isinstance(module, nn.GroupNorm):
        return norm_macs(x.shape, module.affine)
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return norm_macs(x.shape, module.affine)
    return None
