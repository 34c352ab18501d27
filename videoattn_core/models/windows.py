"""Window maths shared by the shifted-window families (Video Swin and the divided space-time window model).

Plain functions on channels-last token grids ``(B, T, H, W, C)``, following Liu et al., "Swin Transformer"
(ICCV 2021) and "Video Swin Transformer" (CVPR 2022), with the exact rules of the official Video Swin code
(SwinTransformer/Video-Swin-Transformer, ``mmaction/models/backbones/swin_transformer.py``) and torchvision
(``torchvision/models/video/swin_transformer.py``), which agree on all of them:

- a window (and its shift) is clipped to the feature map along any axis where the map is no longer than the
  window, and the shift then drops to 0 on that axis (:func:`clip_window`);
- the grid is zero-padded at the end of each axis to a multiple of the window (:func:`pad_to_windows`);
- the shifted windows roll the grid by ``-shift`` (:func:`cyclic_shift`), and an additive mask of ``-100``
  (:data:`MASK_VALUE`, not ``-inf``) keeps each query inside the region it came from
  (:func:`shift_attention_mask`);
- windows are numbered ``(nt nh nw)`` with the time index slowest, and tokens in a window ``(wt wh ww)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils._python_dispatch import _disable_current_modes

from .layers import AttentionCore, AttentionLayout, GroupedBias, split_qkv

Grid = tuple[int, int, int]

#: the additive logit the official code and torchvision put between tokens of different shift regions
MASK_VALUE = -100.0


def clip_window(grid: Grid, window: Grid, shift: Grid) -> tuple[Grid, Grid]:
    """Window and shift actually used on a ``(T, H, W)`` token grid.

    Along an axis where the grid is no longer than the window, the window shrinks to the grid and the shift
    becomes 0 (the official ``get_window_size`` and torchvision's ``_get_window_and_shift_size``)."""
    clipped_window, clipped_shift = list(window), list(shift)
    for axis in range(3):
        if grid[axis] <= window[axis]:
            clipped_window[axis] = grid[axis]
            clipped_shift[axis] = 0
    return tuple(clipped_window), tuple(clipped_shift)  # type: ignore[return-value]


def padded_grid(grid: Grid, window: Grid) -> Grid:
    """``grid`` rounded up to a multiple of ``window`` on every axis."""
    return tuple(math.ceil(g / w) * w for g, w in zip(grid, window))  # type: ignore[return-value]


def pad_to_windows(x: Tensor, window: Grid) -> Tensor:
    """Zero-pad ``x (B, T, H, W, C)`` at the end of T, H and W to multiples of ``window``."""
    t, h, w = x.shape[1:4]
    pt, ph, pw = (p - g for p, g in zip(padded_grid((t, h, w), window), (t, h, w)))
    if pt or ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph, 0, pt))
    return x


def cyclic_shift(x: Tensor, shift: Grid, inverse: bool = False) -> Tensor:
    """Roll ``x (B, T, H, W, C)`` by ``-shift`` (the shifted-window step) or back by ``+shift``."""
    if not any(shift):
        return x
    sign = 1 if inverse else -1
    return torch.roll(x, shifts=tuple(sign * s for s in shift), dims=(1, 2, 3))


def window_partition(x: Tensor, window: Grid) -> Tensor:
    """``(B, Tp, Hp, Wp, C)`` → ``(B·nW, Wt·Wh·Ww, C)``; the grid must be a multiple of ``window``."""
    wt, wh, ww = window
    return rearrange(x, "b (nt wt) (nh wh) (nw ww) c -> (b nt nh nw) (wt wh ww) c", wt=wt, wh=wh, ww=ww)


def window_reverse(windows: Tensor, window: Grid, batch: int, grid: Grid) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B·nW, Wt·Wh·Ww, C)`` → ``(B, Tp, Hp, Wp, C)``."""
    wt, wh, ww = window
    nt, nh, nw = (g // w for g, w in zip(grid, window))
    return rearrange(windows, "(b nt nh nw) (wt wh ww) c -> b (nt wt) (nh wh) (nw ww) c",
                     b=batch, nt=nt, nh=nh, nw=nw, wt=wt, wh=wh, ww=ww)


def shift_region_labels(grid: Grid, window: Grid, shift: Grid, device: torch.device | str | None = None) -> Tensor:
    """``(Tp, Hp, Wp)`` labels of the regions of the rolled, padded grid that were contiguous before the roll.

    Along each axis of length P, positions ``[0, P−window)``, ``[P−window, P−shift)`` and ``[P−shift, P)`` are
    three regions (the last window holds the end of the map followed by the wrapped-around start); with no
    shift on an axis the last window is a single region."""
    labels = torch.zeros(grid, dtype=torch.long, device=device)
    for axis, (size, w, s) in enumerate(zip(grid, window, shift)):
        pos = torch.arange(size, device=device)
        axis_label = (pos >= size - w).long() + ((pos >= size - s).long() if s else 0)
        view = [1, 1, 1]
        view[axis] = size
        labels = labels * 3 + axis_label.view(view)
    return labels


def shift_attention_mask(grid: Grid, window: Grid, shift: Grid, *, device: torch.device | str | None = None,
                         dtype: torch.dtype = torch.float32) -> Tensor:
    """``(nW, N, N)`` additive mask for shifted windows on a padded ``grid``: 0 between tokens of the same
    region (:func:`shift_region_labels`), :data:`MASK_VALUE` between tokens the roll brought together."""
    labels = shift_region_labels(grid, window, shift, device)
    labels = window_partition(labels[None, ..., None], window).squeeze(-1)  # (nW, N)
    different = labels[:, :, None] != labels[:, None, :]  # (nW, N_q, N_k)
    return torch.zeros(different.shape, dtype=dtype, device=device).masked_fill_(different, MASK_VALUE)


def relative_position_index(window: Grid, table_window: Grid | None = None) -> Tensor:
    """``(N, N)`` row of the relative position bias table for every (query, key) pair of a window.

    The table of ``table_window`` (default ``window``) has ``(2·Wt−1)(2·Wh−1)(2·Ww−1)`` rows, ordered by the
    offset (Δt, Δh, Δw) = query − key with Δt slowest; a smaller ``window`` indexes the same table by its own
    offsets. Made on the default device (a model built on the meta device gets a meta tensor)."""
    index = _relative_position_index(tuple(window), tuple(table_window or window))
    device = torch.empty(0).device  # the default device, or the one of an enclosing ``with torch.device(...)``
    return index.clone() if device.type == "cpu" else index.to(device)


#: the mark ``torch.compiler.assume_constant_result`` sets on a function (tests/test_compile.py checks it still is)
CONSTANT_RESULT_MARK = "_dynamo_marked_constant"


def _index_table(fn):
    """``functools.lru_cache`` for the index tables a forward looks up: they are worked out once per grid and kept
    across forwards like buffers, so they are built with no dispatch mode active (a forward's memory count, live
    or on the meta device, sees the same tensors whether or not the table was cached before it ran).

    Under ``torch.compile`` a table is a constant of the graph: worked out once while tracing, not traced (its
    ``unique`` and ``int`` would break the graph in two at every block, and the rest would run at every call). The
    mark is set as ``torch.compiler.assume_constant_result`` sets it, without calling it: that imports TorchDynamo,
    a second of every process's start."""
    cached = functools.lru_cache(maxsize=32)(fn)

    @functools.wraps(fn)
    def table(*args):
        with _disable_current_modes():
            return cached(*args)

    setattr(table, CONSTANT_RESULT_MARK, True)
    return table


@_index_table
def _relative_position_index(window: tuple[int, ...], table_window: tuple[int, ...]) -> Tensor:
    """:func:`relative_position_index` on the CPU, worked out once per window: every block of a stage has the same
    one, and on the meta device each operation here would go through PyTorch's Python reference kernels."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w, device="cpu") for w in window), indexing="ij")).flatten(1)
    offsets = coords[:, :, None] - coords[:, None, :]  # (3, N_q, N_k), query − key
    index = torch.zeros(offsets.shape[1:], dtype=torch.long, device="cpu")
    for axis in range(3):
        index = index * (2 * table_window[axis] - 1) + offsets[axis] + table_window[axis] - 1
    return index


def position_bias(table: Tensor, index: Tensor) -> Tensor:
    """``(1, heads, N, N)`` attention bias read from a relative position ``table (offsets, heads)`` at the
    ``(N, N)`` rows of ``index``: gathered from the transposed table, so that it is laid out as the attention
    kernel reads it (not a permuted view), by ``index_select`` (half the time of indexing with a tensor).

    On the CPU a half-precision table is gathered in float32 and rounded back, the same numbers (every bfloat16 or
    float16 value is a float32): PyTorch's CPU ``index_select`` gathers 2-byte elements one at a time and float32
    ones in vector registers, 4× the speed (Video Swin-B's 16-head windows: 5.6 → 1.3 ms a block in bfloat16)."""
    n = index.shape[-1]
    source = table.float() if table.device.type == "cpu" and table.element_size() == 2 else table
    return source.t().index_select(1, index.reshape(-1)).to(table.dtype).view(1, table.shape[1], n, n)


def _token_tables(device: torch.device, *lengths: int) -> tuple[Tensor, ...] | None:
    """On the meta device (a summary), empty index tables of these lengths: their shapes are all a summary needs,
    and the real ones take 8 bytes a token (gigabytes at the largest sizes the hyperparameters allow)."""
    if device.type != "meta":
        return None
    return tuple(torch.empty(n, dtype=torch.long, device=device) for n in lengths)


@_index_table
def shifted_window_order(grid: Grid, window: Grid, shift: Grid,
                         device: torch.device = torch.device("cpu")) -> tuple[Tensor, Tensor]:
    """Token order of :func:`window_partition` after :func:`cyclic_shift` on a ``(T, H, W)`` grid that is a
    multiple of ``window``, as indices into the ``(t h w)`` tokens, and the inverse order, on ``device``. Window
    token ``(nt wt, nh wh, nw ww)`` of the rolled grid is token ``((nt·Wt + wt + St) mod T, …)`` of the input."""
    empty = _token_tables(device, math.prod(grid), math.prod(grid))
    if empty:
        return empty  # type: ignore[return-value]
    axes = [(torch.arange(g, device="cpu") + s) % g for g, s in zip(grid, shift)]
    flat = (axes[0][:, None, None] * grid[1] + axes[1][None, :, None]) * grid[2] + axes[2][None, None, :]
    order = window_partition(flat[None, ..., None], window).reshape(-1)  # (nW·N,)
    return order.to(device), torch.argsort(order).to(device)


def window_bias(bias: Tensor, mask: Tensor, batch: int) -> Tensor:
    """``(B·nW, heads, N, N)`` attention bias of shifted windows: the ``(1, heads, N, N)`` relative position
    bias plus the ``(nW, N, N)`` region mask, written in one pass (it is the largest tensor of the block)."""
    if torch.is_grad_enabled() and bias.requires_grad:  # out= takes no autograd: the plain sum and repeat
        return (bias + mask.unsqueeze(1)).repeat(batch, 1, 1, 1)
    n_windows, heads, n = mask.shape[0], bias.shape[1], mask.shape[-1]
    out = bias.new_empty(batch, n_windows, heads, n, n)
    torch.add(bias.unsqueeze(0).expand(out.shape), mask[None, :, None], out=out)
    return out.view(batch * n_windows, heads, n, n)


@dataclass(frozen=True)
class GroupedWindows:
    """One clip's shifted windows ordered for :class:`~videoattn_core.models.layers.GroupedBias`: windows with the
    same region mask side by side, the unmasked ones first.

    ``gather`` ``(nW, N)`` picks each window's tokens from the clip's padded ``(Tp·Hp·Wp)`` token rows and
    ``scatter`` ``(T·H·W,)`` gives each token of the unpadded grid its place in ``gather``'s order; ``masks``
    ``(P, N, N)`` holds the distinct region masks and ``counts`` the number of windows that take each, in order.
    :func:`batched_windows` spreads them over a batch."""

    gather: Tensor
    scatter: Tensor
    masks: Tensor
    counts: tuple[int, ...]
    order: Tensor  # (nW,) each window's index in window_partition's order


@_index_table
def grouped_windows(size: Grid, window: Grid, shift: Grid, device: torch.device, dtype: torch.dtype) -> GroupedWindows:
    """:class:`GroupedWindows` on a ``(T, H, W)`` token grid of ``size``, padded to a multiple of ``window`` (worked
    out once per grid, on ``device``).

    Along a shifted axis only the last window holds two regions of :func:`shift_region_labels` (the end of the map,
    then the wrapped-around start, split at ``window − shift``); every other window lies in the first region. So
    a window's mask is set by the axes along which it is last: at most 2³ distinct masks, each made from one
    window's local coordinates (the same as :func:`shift_attention_mask`'s rows for those windows)."""
    n = math.prod(window)
    grid = padded_grid(size, window)
    counts = [g // w for g, w in zip(grid, window)]
    index = torch.arange(math.prod(counts), device="cpu")
    position = [index // (counts[1] * counts[2]), index // counts[2] % counts[1], index % counts[2]]  # (nt, nh, nw)
    key = sum(((position[a] == counts[a] - 1) & bool(shift[a])).long() << a for a in range(3))  # (nW,)
    keys = torch.unique(key)  # sorted: 0, the unmasked windows, first
    local = torch.stack(torch.meshgrid(*(torch.arange(w, device="cpu") for w in window), indexing="ij")).flatten(1)
    masks = []
    for k in keys.tolist():
        label = sum(((local[a] >= window[a] - shift[a]) & bool(k >> a & 1)).long() << a for a in range(3))  # (N,)
        masks.append(torch.zeros((n, n), dtype=dtype).masked_fill_(label[:, None] != label[None, :], MASK_VALUE))
    per_mask = tuple(int((key == k).sum()) for k in keys)
    empty = _token_tables(device, math.prod(grid), math.prod(size))
    if empty:
        return GroupedWindows(empty[0].view(-1, n), empty[1], torch.stack(masks).to(device), per_mask,
                              torch.empty(len(key), dtype=torch.long, device=device))
    order, _ = shifted_window_order(grid, window, shift)
    windows = torch.argsort(key, stable=True)
    gather = order.view(-1, n)[windows]  # (nW, N)
    scatter = torch.argsort(gather.reshape(-1)).view(grid)[:size[0], :size[1], :size[2]].reshape(-1)  # no padding
    return GroupedWindows(gather.to(device), scatter.to(device), torch.stack(masks).to(device), per_mask,
                          windows.to(device))


def batched_windows(grouped: GroupedWindows, batch: int) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """``grouped``'s ``gather`` and ``scatter`` over the ``(B·Tp·Hp·Wp)`` token rows of ``batch`` clips, batch fastest
    within a window (so the windows of a mask stay one run), and the groups per mask. A few integer operations per
    call, not a table per batch size: under ``torch.compile`` the batch may be symbolic. (A function, not a method:
    Dynamo cannot call a method of a constant it did not trace.)"""
    windows, n = grouped.gather.shape
    clip = torch.arange(batch, device=grouped.gather.device)
    gather = (grouped.gather[:, None, :] + clip[None, :, None] * (windows * n)).reshape(-1)  # (nW, B, N) → rows
    window, token = grouped.scatter // n, grouped.scatter % n
    scatter = ((window[None, :] * batch + clip[:, None]) * n + token[None, :]).reshape(-1)  # (B, T·H·W)
    return gather, scatter, tuple(count * batch for count in grouped.counts)


def layout_groups(grouped: GroupedWindows, batch: int) -> Tensor:
    """The ``(b nw)`` index (the layout's order) of each group in :func:`batched_windows`' order."""
    clip = torch.arange(batch, device=grouped.order.device)
    return (grouped.order[:, None] + clip[None, :] * grouped.order.numel()).reshape(-1)


def window_attention(attn: nn.Module, x: Tensor, *, core: AttentionCore, kind: str) -> Tensor:
    """The attention branch of a (shifted) window block on the normalised grid ``x (B, T, H, W, C)``, on the
    same grid: window and shift clipped to the grid, padding, roll, partition, attention and their inverses.

    ``attn`` is the block's attention module with the official names both window families share: ``qkv`` and
    ``proj`` (with ``proj_drop``) linear layers, ``num_heads``, ``window_size``, ``shift_size``, and
    ``relative_position_bias(window)``, the ``(1, heads, N, N)`` bias of a window. With the fused kernel (nothing
    captured), shifted windows are gathered from the padded grid's token rows (the roll and the partition in one
    step) in an order where windows with the same mask are side by side, each run sharing its bias unrepeated
    (:class:`GroupedWindows`); without it, where the grid is a multiple of the window, the roll and the partition
    are one gather of token rows too. Every path computes the same function; a capture sees the windows in the
    ``(b nw)`` order of its :class:`AttentionLayout`."""

    def heads(tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # (G, N, C) → three (G, heads, N, d) views
        return split_qkv(attn.qkv(tokens), attn.num_heads)

    def project(out: Tensor) -> Tensor:  # (G, heads, N, d) → (G, N, C)
        return attn.proj_drop(attn.proj(rearrange(out, "g h n d -> g n (h d)")))

    b, t, h, w, c = x.shape
    window, shift = clip_window((t, h, w), attn.window_size, attn.shift_size)
    bias = attn.relative_position_bias(window)  # (1, heads, N, N)
    fits = all(g % s == 0 for g, s in zip((t, h, w), window))
    grid = padded_grid((t, h, w), window)
    layout = AttentionLayout(kind, (t, h, w), groups="(b nw)", tokens="(wt wh ww)", window=window, shift=shift,
                             padded_grid=grid)
    if any(shift) and core.fused and core.sink is None:
        grouped = grouped_windows((t, h, w), window, shift, x.device, bias.dtype)
        gather, scatter, sizes = batched_windows(grouped, b)
        rows = pad_to_windows(x, window).reshape(-1, c)  # (B·Tp·Hp·Wp, C)
        q, k, v = heads(rows.index_select(0, gather).view(-1, math.prod(window), c))
        parts = (bias + grouped.masks.unsqueeze(1)).split(1)  # P × (1, heads, N, N)
        out = project(core(q, k, v, GroupedBias(parts, sizes, layout_groups(grouped, b)), layout))
        return out.reshape(-1, c).index_select(0, scatter).view(b, t, h, w, c)
    if any(shift) and fits:  # roll and partition in one gather of token rows, undone by the inverse gather
        gather, scatter = shifted_window_order(grid, window, shift, x.device)
        windows = x.reshape(b, -1, c).index_select(1, gather).view(-1, math.prod(window), c)  # (B·nW, N, C)
    else:
        x = cyclic_shift(pad_to_windows(x, window), shift)  # (B, Tp, Hp, Wp, C), rolled by −shift
        windows = window_partition(x, window)  # (B·nW, N, C)
    if any(shift):
        mask = shift_attention_mask(grid, window, shift, device=x.device, dtype=bias.dtype)  # (nW, N, N)
        bias = window_bias(bias, mask, b)  # (B·nW, heads, N, N), windows fastest
    out = project(core(*heads(windows), bias, layout))  # (B·nW, N, C)
    if any(shift) and fits:
        return out.view(b, -1, c).index_select(1, scatter).view(b, t, h, w, c)
    x = cyclic_shift(window_reverse(out, window, b, grid), shift, inverse=True)
    return x[:, :t, :h, :w].contiguous()
