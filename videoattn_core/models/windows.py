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

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

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


@functools.lru_cache(maxsize=32)
def _relative_position_index(window: tuple[int, ...], table_window: tuple[int, ...]) -> Tensor:
    """:func:`relative_position_index` on the CPU, worked out once per window: every block of a stage has the same
    one, and on the meta device each operation here would go through PyTorch's Python reference kernels."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w, device="cpu") for w in window), indexing="ij")).flatten(1)
    offsets = coords[:, :, None] - coords[:, None, :]  # (3, N_q, N_k), query − key
    index = torch.zeros(offsets.shape[1:], dtype=torch.long, device="cpu")
    for axis in range(3):
        index = index * (2 * table_window[axis] - 1) + offsets[axis] + table_window[axis] - 1
    return index
