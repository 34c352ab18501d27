"""Captured attention laid back onto the video's T×H×W token grid, and attention rollout across layers.

Every captured attention carries an :class:`~videoattn_core.models.layers.AttentionLayout` saying how its
groups and tokens sit on the grid. From it :func:`token_coordinates` derives, for each group and token, the
flat grid cell it stands for (the cyclic shift of shifted windows undone, padding marked), so one mechanism
serves spatial, temporal, joint, windowed and pooled attention alike.

Rollout follows Abnar & Zuidema, "Quantifying Attention Flow in Transformers" (ACL 2020): each layer's
head-averaged attention A becomes ½·I + ½·A (the residual path), and the layers' matrices are multiplied. Only
the CLS token's row is needed, so it is propagated backwards through the layers as a vector; no
(N × N) product is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from ..models.layers import AttentionCore, AttentionLayout, CapturedAttention
from ..registry import family_of_model
from .capture import capturing

CLS = -2  # token coordinate of a CLS token
PAD = -1  # token coordinate of a padding token (windows over a grid that is not a multiple of the window)

Query = str | tuple[int | None, int, int]


@dataclass
class AttentionMap:
    """One query's attention over the key grid.

    ``values`` is (T, H, W) over ``grid`` (the key grid: the token grid, or the pooled kv grid), NaN where the
    query cannot attend; ``cls_weight`` is the probability given to the CLS key (None without one); ``boxes``
    are the borders of the attended window(s) as ``(t0, t1, y0, y1, x0, x1)`` half-open token ranges."""

    values: np.ndarray
    grid: tuple[int, int, int]
    cls_weight: float | None = None
    boxes: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    note: str = ""


def _grid_index(batch: int, grid: tuple[int, int, int]) -> Tensor:
    t, h, w = grid
    return torch.arange(batch * t * h * w).reshape(batch, t, h, w)


def token_coordinates(layout: AttentionLayout, batch: int, *, keys: bool = False) -> Tensor:
    """``(groups, tokens)`` tensor: the flat cell ``b·T·H·W + t·H·W + y·W + x`` each token stands for, with
    ``CLS`` and ``PAD`` markers. ``keys`` selects the key grid of pooled attention (``kv_grid``)."""
    grid = (layout.kv_grid if keys else layout.q_grid) or layout.grid
    index = _grid_index(batch, grid)
    if layout.kind == "cross" and not keys:
        # learned query tokens sit on no cell: like a CLS token, they stand for the whole clip
        groups = rearrange(index, f"b t h w -> {layout.groups} {layout.tokens}").shape[0]
        return torch.full((groups, layout.queries or 1), CLS, dtype=index.dtype)
    if layout.window is not None:
        coords = _window_coordinates(index, layout)
    else:
        coords = rearrange(index, f"b t h w -> {layout.groups} {layout.tokens}")
    if layout.cls:
        coords = torch.cat((torch.full((coords.shape[0], 1), CLS, dtype=coords.dtype), coords), dim=1)
    return coords


def _window_coordinates(index: Tensor, layout: AttentionLayout) -> Tensor:
    """Windows as the Video Swin code forms them: pad to ``padded_grid``, roll by −shift, partition."""
    wt, wh, ww = layout.window
    padded = layout.padded_grid or layout.grid
    b, t, h, w = index.shape
    full = torch.full((b, *padded), PAD, dtype=index.dtype)
    full[:, :t, :h, :w] = index
    shift = layout.shift or (0, 0, 0)
    if any(shift):
        full = torch.roll(full, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    return rearrange(full, "b (nt wt) (nh wh) (nw ww) -> (b nt nh nw) (wt wh ww)", wt=wt, wh=wh, ww=ww)


def query_grid(captured: CapturedAttention) -> tuple[tuple[int, int, int], bool]:
    """The (T, H, W) grid a query is chosen on, and whether a CLS query exists (the learned queries of
    cross-attention answer as ``"cls"``)."""
    layout = captured.layout
    return (layout.q_grid or layout.grid), layout.cls or layout.kind == "cross"


def _head_probs(captured: CapturedAttention, head: int | None) -> Tensor:
    probs = captured.probs.float()
    heads = probs.shape[1]
    if head is None:
        return probs.mean(dim=1)
    if not 0 <= head < heads:
        raise ValueError(f"head must be from 0 to {heads - 1} (or None for the mean over heads), got {head}")
    return probs[:, head]


def _query_cells(query: Query, grid: tuple[int, int, int], batch: int, has_cls: bool) -> list[int]:
    t_n, h_n, w_n = grid
    if query == "cls":
        if not has_cls:
            raise ValueError("this layer has no CLS token; choose a query position (t, y, x)")
        return [CLS]
    t, y, x = query
    if not (0 <= y < h_n and 0 <= x < w_n and (t is None or 0 <= t < t_n)):
        raise ValueError(f"query position {query} is outside the {t_n}×{h_n}×{w_n} query grid")
    frames = range(t_n) if t is None else [t]
    return [batch * t_n * h_n * w_n + f * h_n * w_n + y * w_n + x for f in frames]


def attention_map(captured: CapturedAttention, *, query: Query = "cls", head: int | None = None,
                  batch: int = 0) -> AttentionMap:
    """Where one query looks: its attention row laid onto the key grid.

    ``query`` is ``"cls"`` or ``(t, y, x)`` on the query grid (:func:`query_grid`); ``t=None`` takes that
    position in every frame (each frame's row lands on its own frame for spatial attention; overlapping rows
    are averaged). ``head=None`` averages the heads. In cross-attention (V-JEPA 2's pooler) the queries are
    learned tokens on no grid cell: ``"cls"`` selects them (their mean when there are several) and their
    attention is laid over the video's key grid."""
    layout = captured.layout
    if layout.kind == "cross" and query != "cls":
        raise ValueError("this layer's queries are learned tokens, not patches; choose the query 'cls' to see "
                         "where they look over the video")
    probs = _head_probs(captured, head)  # (G, Nq, Nk)
    groups = probs.shape[0]
    n_batch = max(1, groups // token_coordinates(layout, 1).shape[0])
    q_coords = token_coordinates(layout, n_batch)
    k_coords = token_coordinates(layout, n_batch, keys=True)
    grid_q, has_cls = query_grid(captured)
    kv_grid = layout.kv_grid or layout.grid
    cells = _query_cells(query, grid_q, batch, has_cls)

    size = int(np.prod(kv_grid))
    offset = batch * size
    total = torch.zeros(size + 1)  # the last slot collects the CLS key
    count = torch.zeros(size + 1)
    clip_groups = ((k_coords >= offset) & (k_coords < offset + size)).any(dim=1)  # groups of this clip
    for cell in cells:
        g_idx, n_idx = torch.nonzero((q_coords == cell) & clip_groups[:, None], as_tuple=True)
        for g, n in zip(g_idx.tolist(), n_idx.tolist()):
            keys = k_coords[g]
            row = probs[g, n]
            valid = keys >= 0
            slots = torch.where(keys == CLS, torch.tensor(size), keys - offset)
            keep = valid | (keys == CLS)
            total.index_add_(0, slots[keep], row[keep])
            count.index_add_(0, slots[keep], torch.ones(int(keep.sum())))
    if not count.any():
        raise ValueError(f"query {query} does not occur in batch element {batch}")
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.tensor(float("nan")))
    values = mean[:size].reshape(kv_grid).numpy()
    cls_weight = float(mean[size]) if count[size] > 0 else None

    boxes = []
    if layout.window is not None and query != "cls":
        attended = np.argwhere(~np.isnan(values))
        boxes = _boxes(attended, kv_grid)
    note = ""
    if layout.kv_grid is not None and (kv_grid != layout.grid or grid_q != layout.grid):
        note = (f"queries on a {'×'.join(map(str, grid_q))} grid, keys pooled to "
                f"{'×'.join(map(str, kv_grid))} from the {'×'.join(map(str, layout.grid))} input grid")
    return AttentionMap(values=values, grid=kv_grid, cls_weight=cls_weight, boxes=boxes, note=note)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Sorted distinct integers as half-open runs: [0, 1, 2, 6, 7] → [(0, 3), (6, 8)]."""
    values = np.unique(values)
    if values.size == 0:
        return []
    breaks = np.nonzero(np.diff(values) > 1)[0]
    starts = np.concatenate(([values[0]], values[breaks + 1]))
    ends = np.concatenate((values[breaks], [values[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _boxes(cells: np.ndarray, grid: tuple[int, int, int]) -> list[tuple[int, int, int, int, int, int]]:
    """Borders of a (possibly wrapped-around) window: the product of each axis' runs of attended cells."""
    if cells.size == 0:
        return []
    return [(t0, t1, y0, y1, x0, x1)
            for t0, t1 in _runs(cells[:, 0]) for y0, y1 in _runs(cells[:, 1]) for x0, x1 in _runs(cells[:, 2])]


def temporal_matrix(captured: CapturedAttention, position: tuple[int, int], *, head: int | None = None,
                    batch: int = 0) -> np.ndarray:
    """(T, T) attention among the frames at one patch position (rows: query frame, columns: key frame)."""
    layout = captured.layout
    if layout.kind != "time":
        raise ValueError(f"a temporal matrix needs a temporal attention layer; this one is {layout.kind}")
    probs = _head_probs(captured, head)
    t_n, h_n, w_n = layout.grid
    y, x = position
    if not (0 <= y < h_n and 0 <= x < w_n):
        raise ValueError(f"position {position} is outside the {h_n}×{w_n} patch grid")
    n_batch = probs.shape[0] // (h_n * w_n)
    coords = token_coordinates(layout, n_batch)
    first = batch * t_n * h_n * w_n + y * w_n + x
    g = int(torch.nonzero((coords == first).any(dim=1))[0])
    return probs[g].numpy()


def capture_all(model: nn.Module, x: Tensor, *, reduce=None) -> list[CapturedAttention]:
    """Run ``model(x)`` once and return every attention call's probabilities, in execution order.

    ``reduce`` (e.g. a mean over heads) is applied to each call's probabilities as they are captured, to keep
    memory small. Runs under :func:`~videoattn_core.attention.capture.capturing` (the model's lock; the sinks are always
    removed, also when the forward fails). For a few named layers with timing and costs, use
    :func:`videoattn_core.inspect` instead."""
    keep = (lambda c: CapturedAttention(reduce(c.probs), c.layout)) if reduce else None
    with capturing(model, reduce=keep) as captured, torch.no_grad():
        model(x)
    return captured.values()


# --- rollout -------------------------------------------------------------------------------------------------

def rollout_unavailable_reason(model: nn.Module) -> str | None:
    """Why attention rollout is not defined for ``model``, or None when it is."""
    config = getattr(model, "config", None)
    if config is not None and not getattr(config, "has_head", True):
        return "this model has no attention"
    cores = [m for m in model.modules() if isinstance(m, AttentionCore)]
    if not cores:
        return "this model has no attention layers"
    family = family_of_model(model)
    stated = family.rollout_unavailable(config) if family is not None else None  # the family says why not
    if stated:
        return stated
    if any(core.kind in ("window", "pooled") for core in cores):
        return ("rollout needs every layer to attend over the same tokens with a CLS token; windowed and pooled "
                "attention change or split the token set between layers")
    readout = _readout_of(model)
    if readout not in ("cls", "frame_cls", *READOUTS):
        return (f"rollout starts from the token the classifier reads; this model reads {readout!r}, which is "
                f"none of cls, {', '.join(READOUTS)}")
    return None


#: the token a classifier without CLS reads, as its family declares it (``readout``; VideoMAE): the mean of all
#: patch tokens, or the first patch token in ``(t h w)`` order
READOUTS = ("mean", "first")


def _readout_of(model: nn.Module) -> str:
    family = family_of_model(model)
    return family.readout(model.config) if family is not None else "cls"


def _readout_vector(model: nn.Module, has_cls: bool, size: int) -> Tensor:
    """The row rollout starts from, over the canonical tokens (patches ``(t h w)``, then CLS): the CLS token, or
    for a model without one the token its classifier reads (its family's ``readout``)."""
    v = torch.zeros(size + 1, dtype=torch.float64)
    readout = _readout_of(model)
    if has_cls or readout not in READOUTS:
        if not has_cls:
            raise ValueError("attention rollout is not available: this model has no CLS token and its family "
                             "does not say which token its classifier reads (a readout of 'mean' or 'first')")
        v[size] = 1.0
    elif readout == "mean":
        v[:size] = 1.0 / size  # mean pooling: every patch token weighs 1/N
    else:
        v[0] = 1.0
    return v


def rollout(model: nn.Module, x: Tensor) -> np.ndarray:
    """Attention rollout of the CLS token onto the (T, H, W) token grid for the first clip of ``x``.

    Models without a CLS token roll out the token their classifier reads (their family's ``readout``: the mean of all
    tokens, a row of 1/N, or the first token). Sums to 1 over the patch tokens. Raises ``ValueError`` with the reason where the architecture does not
    allow it (see :func:`rollout_unavailable_reason`). In space-only TimeSformer each frame has its own CLS
    token, averaged after the blocks; they are treated as one token here, as the final average does."""
    reason = rollout_unavailable_reason(model)
    if reason:
        raise ValueError(f"attention rollout is not available: {reason}")
    # heads averaged as they are captured (kept as a single head): one (G, 1, N, N) map per attention call
    records = capture_all(model, x[:1], reduce=lambda p: p.float().mean(dim=1, keepdim=True))
    grid = records[0].layout.grid
    size = int(np.prod(grid))
    # learned cross-attention queries (V-JEPA 2's pooler) stand for the whole clip, as a CLS token does
    has_cls = any(record.layout.cls or record.layout.kind == "cross" for record in records)
    v = _readout_vector(model, has_cls, size)  # canonical tokens: patches (t h w), then the CLS token
    for record in reversed(records):
        probs, layout = record.probs[:, 0], record.layout  # (G, N_q, N_k)
        q = _canonical(token_coordinates(layout, 1), size)
        k = _canonical(token_coordinates(layout, 1, keys=True), size)
        copies = torch.bincount(q.flatten(), minlength=size + 1).double()
        # v·A: a token that appears as a query in several groups (a repeated CLS) splits its weight evenly
        weights = (v / copies.clamp(min=1))[q]  # (G, Nq)
        mixed = torch.zeros_like(v)
        mixed.index_add_(0, k.flatten(), torch.einsum("gq,gqk->gk", weights, probs.double()).flatten())
        mixed = torch.where(copies > 0, mixed, mixed + v)  # tokens this layer does not touch pass unchanged
        v = 0.5 * v + 0.5 * mixed
    patches = v[:size].float()
    return (patches / patches.sum()).reshape(grid).numpy()


def _canonical(coords: Tensor, size: int) -> Tensor:
    return torch.where(coords == CLS, torch.tensor(size), coords)


# --- relative position tables --------------------------------------------------------------------------------

@dataclass
class RelativeTable:
    """A learned relative-position table laid out by offset, ready to draw as heatmaps.

    ``panels`` maps a title to a 2-D array whose rows run over ``y_offsets`` (or heads/channels when
    ``y_offsets`` is None) and whose columns run over ``x_offsets``; offsets are query − key."""

    name: str
    panels: dict[str, np.ndarray]
    x_label: str
    y_label: str
    x_offsets: list[int]
    y_offsets: list[int] | None
    note: str = ""


def _offsets(n: int) -> list[int]:
    return list(range(-(n // 2), n // 2 + 1))


def relative_position_tables(module: nn.Module, *, dt: int = 0) -> list[RelativeTable]:
    """The relative-position tables ``module`` owns, each arranged by offset.

    - a 3-D window bias table (Video Swin; ``(2Wt−1)(2Wh−1)(2Ww−1) × heads``, Δt slowest): one Δh × Δw panel
      per head at frame offset ``dt``, and the Δt profile at Δh = Δw = 0 (heads × Δt);
    - a 2-D window bias table (divided-window Swin): one Δh × Δw panel per head;
    - a 1-D temporal table (``(2T−1) × heads``): heads × Δt;
    - MViTv2's decomposed embeddings ``rel_pos_t/h/w`` (``(2S−1) × head_dim``): channels × offset (they are
      not biases themselves: the bias is q·R).
    """
    tables: list[RelativeTable] = []
    window = getattr(module, "window_size", None)
    for name, param in module.named_parameters(recurse=False):
        values = param.detach().float().cpu().numpy()
        if name == "relative_position_bias_table" and window is not None:
            wt, wh, ww = (1, *window) if len(window) == 2 else window
            heads = values.shape[1]
            cube = values.reshape(2 * wt - 1, 2 * wh - 1, 2 * ww - 1, heads)
            if not -(wt - 1) <= dt <= wt - 1:
                raise ValueError(f"dt must be from {-(wt - 1)} to {wt - 1} for a window of {wt} frames, got {dt}")
            plane = cube[dt + wt - 1]  # (Δh, Δw, heads)
            tables.append(RelativeTable(
                name, {f"head {h}": plane[:, :, h] for h in range(heads)}, "Δw (query − key)", "Δh (query − key)",
                _offsets(2 * ww - 1), _offsets(2 * wh - 1),
                note=f"bias added to the attention logits, at frame offset Δt = {dt}" if wt > 1 else
                "bias added to the attention logits"))
            if wt > 1:
                profile = cube[:, wh - 1, ww - 1, :].T  # (heads, Δt)
                tables.append(RelativeTable(f"{name} over Δt", {"Δh = Δw = 0": profile}, "Δt (query − key)",
                                            "head", _offsets(2 * wt - 1), None,
                                            note="bias against the frame offset, same spatial position"))
        elif name in ("relative_position_bias_table", "temporal_position_bias_table") and values.ndim == 2:
            tables.append(RelativeTable(name, {"all heads": values.T}, "Δt (query − key)", "head",
                                        _offsets(values.shape[0]), None,
                                        note="bias added to the temporal attention logits by frame offset"))
        elif name.startswith("rel_pos_") and values.ndim == 2:
            axis = {"rel_pos_t": "Δt", "rel_pos_h": "Δh", "rel_pos_w": "Δw"}.get(name, "offset")
            tables.append(RelativeTable(name, {name: values.T}, f"{axis} (query − key)", "channel",
                                        _offsets(values.shape[0]), None,
                                        note="decomposed embedding: the bias is the query times this table"))
    return tables


def layer_relative_tables(model: nn.Module, layer: str, *, dt: int = 0) -> list[RelativeTable]:
    """The relative-position tables of attention layer ``layer`` (the module and the ones below it)."""
    return [t for n, m in model.named_modules() if n == layer or n.startswith(layer + ".")
            for t in relative_position_tables(m, dt=dt)]


def layer_window_frames(model: nn.Module, layer: str) -> int:
    """Frames of the 3D window of attention layer ``layer`` (1 for layers without a 3D window): the range of the
    frame offsets its bias table covers is ±(this − 1)."""
    return max((getattr(m, "window_size", (1,))[0] for n, m in model.named_modules()
                if (n == layer or n.startswith(layer + ".")) and len(getattr(m, "window_size", ())) == 3), default=1)
