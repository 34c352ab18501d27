"""Every figure of the app, as pure functions from numbers and arrays to Plotly figures.

Nothing here computes model quantities: the callers hand in what :mod:`videoattn_core.inspection` and
:mod:`videoattn_core.attention_maps` computed (per-layer costs, attention maps on the token grid, window
boxes), and these functions only lay them out. Frame images travel as PNG data URIs, attention maps at
token resolution (each token drawn as a block over its pixels), so a figure stays small enough to redraw
while a slider moves.

Conventions: images are ``(T, H, W, 3)`` uint8; attention maps ``(T', h, w)`` floats on the token grid,
``NaN`` where the query cannot attend (drawn transparent); boxes ``(t0, t1, y0, y1, x0, x1)`` in token
coordinates, end-exclusive.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .units import human  # noqa: F401  (pages and tests use figures.human)

#: colours of the cost categories, shared by every chart that splits a cost
CATEGORY_COLORS = {
    "attention": "#d62728",
    "mlp": "#1f77b4",
    "embedding": "#2ca02c",
    "norm": "#9467bd",
    "head": "#ff7f0e",
    "pooling": "#8c564b",
    "conv": "#17becf",
    "other": "#7f7f7f",
}

_HEAT_SCALE = "Inferno"
_BOTTOM_LEGEND = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0)


def _layout(fig: go.Figure, title: str | None = None, height: int | None = None,
            subplot_titles: bool = False) -> go.Figure:
    top = (40 if title else 10) + (30 if subplot_titles else 0)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=top, b=10), template="plotly_white")
    if height is not None:
        fig.update_layout(height=height)
    return fig


# ----------------------------------------------------------------------------------------------- model costs

def cost_breakdown(rows: Iterable[Mapping[str, Any]], value: str = "params", title: str | None = None,
                   group_depth: int = 2) -> go.Figure:
    """Sunburst of a cost (``params`` or ``macs``) by category, then module group, then layer.

    ``rows`` are leaf layers with ``name`` (dotted module path), ``category`` and the ``value`` key; the
    group of a layer is the first ``group_depth`` parts of its name (``blocks.3``), so a 24-block model
    shows 24 wedges per category, not hundreds of leaves. Zero-cost layers are left out.
    """
    totals: dict[tuple[str, ...], float] = {}
    for row in rows:
        amount = float(row.get(value) or 0)
        if amount <= 0:
            continue
        category = str(row.get("category") or "other")
        parts = str(row["name"]).split(".")
        group = ".".join(parts[:group_depth]) or "(model)"
        for key in ((category,), (category, group), (category, group, str(row["name"]))):
            totals[key] = totals.get(key, 0.0) + amount
    ids, labels, parents, values, colors = [], [], [], [], []
    for key, amount in totals.items():
        if len(key) == 3 and key[2] == key[1]:
            continue  # a group that is itself the layer
        ids.append("/".join(key))
        labels.append(key[-1].split(".")[-1] if len(key) == 3 else key[-1])
        parents.append("/".join(key[:-1]))
        values.append(amount)
        colors.append(CATEGORY_COLORS.get(key[0], CATEGORY_COLORS["other"]))
    fig = go.Figure(go.Sunburst(
        ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
        marker=dict(colors=colors), maxdepth=2,
        hovertemplate="%{id}<br>%{value:,.0f} " + value + "<br>%{percentRoot:.1%} of the model<extra></extra>"))
    return _layout(fig, title, height=420)


def category_bars(totals: Mapping[str, Mapping[str, float]], title: str | None = None) -> go.Figure:
    """Stacked bars of each category's share, one bar per cost (``{"params": {"attention": ..}, "macs": ..}``),
    in percent, so parameters and MACs compare on one axis."""
    fig = go.Figure()
    categories = sorted({c for per in totals.values() for c in per},
                        key=lambda c: list(CATEGORY_COLORS).index(c) if c in CATEGORY_COLORS else 99)
    for category in categories:
        xs, ys, texts = [], [], []
        for cost, per in totals.items():
            whole = sum(per.values()) or 1.0
            xs.append(cost)
            ys.append(100.0 * per.get(category, 0.0) / whole)
            texts.append(human(per.get(category, 0.0)))
        fig.add_bar(x=ys, y=xs, name=category, orientation="h", text=texts, textposition="inside",
                    marker_color=CATEGORY_COLORS.get(category, CATEGORY_COLORS["other"]),
                    hovertemplate=category + ": %{x:.1f}% (%{text})<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title="share (%)", legend=_BOTTOM_LEGEND)
    fig = _layout(fig, title, height=260)
    fig.update_layout(margin_b=90)
    return fig


def cost_curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, x_title: str, y_title: str,
                title: str | None = None, log_y: bool = True, dashed: Iterable[str] = (),
                marker_x: float | None = None) -> go.Figure:
    """Lines of a cost against one input size (frames or pixels), one per named series, on a log axis by
    default (a quadratic cost then shows as a steeper line, not a wall).

    Series named in ``dashed`` are drawn dashed (alternatives to the current config); ``marker_x`` draws a
    vertical line at the current value."""
    dashed = set(dashed)
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_scatter(x=list(xs), y=list(ys), mode="lines+markers", name=name,
                        line=dict(dash="dash" if name in dashed else "solid"),
                        hovertemplate=name + "<br>" + x_title + " %{x}<br>%{y:.3s}<extra></extra>")
    if marker_x is not None:
        fig.add_vline(x=marker_x, line_dash="dot", line_color="grey")
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, legend=_BOTTOM_LEGEND)
    if log_y:
        fig.update_yaxes(type="log", dtick=1, tickformat=".2s", minor=dict(showgrid=True))
    fig = _layout(fig, title, height=360 + 22 * len(series))
    fig.update_layout(margin_b=40 + 22 * len(series))
    return fig


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float | None]], *, y_title: str,
                 title: str | None = None, log_y: bool = False) -> go.Figure:
    """Bars of one quantity per config (``series`` name -> value per group)."""
    fig = go.Figure()
    for name, values in series.items():
        fig.add_bar(x=list(groups), y=[None if v is None else v for v in values], name=name,
                    text=[human(v) if v is not None else "–" for v in values], textposition="outside")
    fig.update_layout(barmode="group", yaxis_title=y_title, legend_orientation="h")
    if log_y:
        fig.update_yaxes(type="log")
    return _layout(fig, title, height=340)


def token_counts(series: Mapping[str, Sequence[tuple[str, int]]], title: str | None = None) -> go.Figure:
    """Tokens per stage for each config: ``{"mvit_v2_s": [("stage 1", 25088), ...]}``."""
    fig = go.Figure()
    for name, stages in series.items():
        fig.add_scatter(x=[s for s, _ in stages], y=[n for _, n in stages], mode="lines+markers", name=name)
    fig.update_layout(xaxis_title="stage", yaxis_title="tokens", legend=_BOTTOM_LEGEND)
    fig.update_yaxes(type="log", dtick=1, tickformat=".2s")
    return _layout(fig, title, height=340)


# ------------------------------------------------------------------------------------------ runs and layers

def topk_bar(labels: Sequence[str], probabilities: Sequence[float], title: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes, best on top."""
    fig = go.Figure(go.Bar(x=list(probabilities)[::-1], y=list(labels)[::-1], orientation="h",
                           text=[f"{p:.1%}" for p in list(probabilities)[::-1]], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_layout(xaxis_title="probability", xaxis_range=[0, max(1e-9, max(probabilities, default=1.0)) * 1.1])
    return _layout(fig, title, height=max(200, 40 * len(labels) + 80))


def layer_times(names: Sequence[str], milliseconds: Sequence[float], categories: Sequence[str] | None = None,
                title: str | None = None) -> go.Figure:
    """Measured time per layer, in execution order."""
    colors = [CATEGORY_COLORS.get(c, CATEGORY_COLORS["other"]) for c in categories] if categories else None
    fig = go.Figure(go.Bar(x=list(names), y=list(milliseconds), marker_color=colors,
                           hovertemplate="%{x}<br>%{y:.3f} ms<extra></extra>"))
    fig.update_layout(yaxis_title="ms", xaxis_showticklabels=len(names) <= 40)
    return _layout(fig, title, height=300)


def macs_agreement(names: Sequence[str], analytic: Sequence[float], measured: Sequence[float],
                   title: str | None = None) -> go.Figure:
    """Analytic against measured MACs per layer; points on the diagonal agree."""
    pairs = [(n, a, m) for n, a, m in zip(names, analytic, measured) if a and m]
    fig = go.Figure()
    if pairs:
        top = max(max(a, m) for _, a, m in pairs)
        low = min(min(a, m) for _, a, m in pairs)
        fig.add_scatter(x=[low, top], y=[low, top], mode="lines", line=dict(dash="dot", color="grey"),
                        name="equal", hoverinfo="skip")
        fig.add_scatter(x=[a for _, a, _ in pairs], y=[m for _, _, m in pairs], mode="markers", name="layers",
                        text=[n for n, _, _ in pairs],
                        hovertemplate="%{text}<br>analytic %{x:.3s}<br>measured %{y:.3s}<extra></extra>")
    fig.update_layout(xaxis_title="analytic MACs", yaxis_title="measured MACs", showlegend=False)
    fig.update_xaxes(type="log", dtick=1, tickformat=".2s")
    fig.update_yaxes(type="log", dtick=1, tickformat=".2s")
    return _layout(fig, title, height=340)


# ------------------------------------------------------------------------------------------- frames and maps

def png_data_uri(image: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 image as a PNG data URI (small in a figure's JSON, unlike a list of pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grid(n: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, n))
    return math.ceil(n / columns), columns


def frames_strip(frames: np.ndarray, titles: Sequence[str] | None = None, columns: int = 8,
                 title: str | None = None) -> go.Figure:
    """The sampled frames as a grid of small images."""
    n = len(frames)
    rows, cols = _grid(n, columns)
    titles = list(titles) if titles is not None else [f"frame {i}" for i in range(n)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.06)
    for i, frame in enumerate(frames):
        fig.add_trace(go.Image(source=png_data_uri(frame), hoverinfo="skip"), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    height = int(rows * (900 / cols) * frames.shape[1] / max(1, frames.shape[2])) + 60
    return _layout(fig, title, height=min(max(height, 160), 900), subplot_titles=True)


def token_time_index(frame: int, frames: int, token_times: int) -> int:
    """Which temporal token slice covers frame ``frame`` when ``frames`` frames became ``token_times`` slices
    (tubelets and temporal pooling merge consecutive frames)."""
    return min(token_times - 1, frame * token_times // max(1, frames))


def attention_overlay(frames: np.ndarray, heat: np.ndarray, *, show: Sequence[int] | None = None,
                      boxes: Iterable[Sequence[int]] = (), query: tuple[int, int, int] | None = None,
                      query_grid: tuple[int, int, int] | None = None, columns: int = 4, opacity: float = 0.55,
                      title: str | None = None, color_title: str = "attention", shared_scale: bool = True) -> go.Figure:
    """Attention laid over the frames.

    ``heat`` is ``(T', h, w)`` on the token grid; frame ``f`` shows slice ``token_time_index(f, T, T')``,
    each token drawn as a block over the pixels it covers. ``NaN`` entries are transparent. ``boxes`` are
    drawn as rectangles on the frames they span; ``query`` ``(t, y, x)`` is marked, in the coordinates of
    ``query_grid`` when the queries sit on another grid than the keys (pooled attention), else of ``heat``.
    """
    frames = np.asarray(frames)
    heat = np.asarray(heat, dtype=np.float64)
    t_frames, height, width = frames.shape[:3]
    t_tok, h_tok, w_tok = heat.shape
    show = list(range(t_frames)) if show is None else [f for f in show if 0 <= f < t_frames]
    rows, cols = _grid(len(show), columns)
    dx, dy = width / w_tok, height / h_tok
    finite = heat[np.isfinite(heat)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if zmax <= zmin:
        zmax = zmin + 1e-12
    boxes = [tuple(int(v) for v in b) for b in boxes]
    q_t, q_h, q_w = query_grid or heat.shape
    qdx, qdy = width / q_w, height / q_h
    single = len(show) == 1
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.05,
                        subplot_titles=None if single else [f"frame {f}" for f in show])
    for i, f in enumerate(show):
        r, c = i // cols + 1, i % cols + 1
        t = token_time_index(f, t_frames, t_tok)
        fig.add_trace(go.Image(source=png_data_uri(frames[f]), x0=0.5, y0=0.5, hoverinfo="skip"), row=r, col=c)
        fig.add_trace(go.Heatmap(
            z=heat[t], x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, opacity=opacity, colorscale=_HEAT_SCALE,
            zmin=zmin if shared_scale else None, zmax=zmax if shared_scale else None, showscale=i == 0,
            colorbar=dict(title=color_title, thickness=12), customdata=_token_coords(t, h_tok, w_tok),
            hovertemplate="token (t=%{customdata[0]}, y=%{customdata[1]}, x=%{customdata[2]})"
                          "<br>%{z:.4f}<extra></extra>", hoverongaps=False), row=r, col=c)
        for t0, t1, y0, y1, x0, x1 in boxes:
            if t0 <= t < t1:
                fig.add_shape(type="rect", x0=x0 * dx, x1=x1 * dx, y0=y0 * dy, y1=y1 * dy,
                              line=dict(color="#00e5ff", width=1.5), row=r, col=c)
        if query is not None and query[0] == token_time_index(f, t_frames, q_t):
            qt, qy, qx = query
            fig.add_shape(type="rect", x0=qx * qdx, x1=(qx + 1) * qdx, y0=qy * qdy, y1=(qy + 1) * qdy,
                          line=dict(color="#39ff14", width=3), row=r, col=c)
    fig.update_xaxes(visible=False, range=[0, width])
    fig.update_yaxes(visible=False, range=[height, 0], scaleanchor="x")
    for i in range(1, len(show)):
        fig.update_yaxes(scaleanchor=f"x{i + 1}", row=i // cols + 1, col=i % cols + 1)
    per = min(900 / cols, 560) * height / max(1, width)
    return _layout(fig, title, height=int(min(1400, max(220, rows * per + 60))), subplot_titles=not single)


def _token_coords(t: int, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([np.full_like(ys, t), ys, xs], axis=-1)


def temporal_matrix(matrix: np.ndarray, *, title: str | None = None, highlight: int | None = None) -> go.Figure:
    """A ``(T, T)`` attention of one patch position across frames: row = query frame, column = key frame."""
    matrix = np.asarray(matrix, dtype=np.float64)
    n = matrix.shape[0]
    fig = go.Figure(go.Heatmap(z=matrix, x=list(range(n)), y=list(range(n)), colorscale=_HEAT_SCALE,
                               colorbar=dict(title="attention", thickness=12),
                               hovertemplate="query frame %{y} → key frame %{x}<br>%{z:.4f}<extra></extra>"))
    if highlight is not None and 0 <= highlight < n:
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=highlight - 0.5, y1=highlight + 0.5,
                      line=dict(color="#39ff14", width=2))
    fig.update_xaxes(title="key frame", dtick=1 if n <= 32 else None, range=[-0.5, n - 0.5], constrain="domain")
    fig.update_yaxes(title="query frame", range=[n - 0.5, -0.5], scaleanchor="x", constrain="domain",
                     dtick=1 if n <= 32 else None)
    return _layout(fig, title, height=420)


def bias_tables(tables: Mapping[str, np.ndarray], *, x_title: str = "head", y_title: str = "relative offset",
                x_offsets: Sequence[int] | None = None, y_offsets: Sequence[int] | None = None,
                title: str | None = None, columns: int = 3) -> go.Figure:
    """Relative position tables (each 2-D, rows × columns) as heatmaps side by side, sharing one colour scale
    centred on 0. ``x_offsets``/``y_offsets`` label the columns/rows with their offsets (query − key)."""
    names = list(tables)
    rows, cols = _grid(max(1, len(names)), columns)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names or ["(none)"], horizontal_spacing=0.08,
                        vertical_spacing=0.12)
    arrays = [np.asarray(tables[n], dtype=np.float64) for n in names]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    bound = max((float(np.nanmax(np.abs(a))) for a in arrays if a.size), default=1.0) or 1.0
    for i, table in enumerate(arrays):
        fig.add_trace(go.Heatmap(z=table, x=list(x_offsets) if x_offsets is not None else None,
                                 y=list(y_offsets) if y_offsets is not None else None,
                                 colorscale="RdBu_r", zmid=0.0, zmin=-bound, zmax=bound, showscale=i == 0,
                                 colorbar=dict(title="value", thickness=12),
                                 hovertemplate=y_title + " %{y}, " + x_title + " %{x}<br>%{z:.4f}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, height=max(320, 300 * rows))


def prediction_timeline(starts: Sequence[float], series: dict[str, Sequence[float]], title: str | None = None
                        ) -> go.Figure:
    """Probability of each named class in each window of a clip (window start in seconds on x)."""
    fig = go.Figure([go.Scatter(x=list(starts), y=list(values), mode="lines+markers", name=label,
                                hovertemplate=f"{label}<br>%{{x:.1f}} s: %{{y:.1%}}<extra></extra>")
                     for label, values in series.items()])
    fig.update_layout(xaxis_title="window start (s)", yaxis_title="probability", yaxis_range=[0, 1])
    return _layout(fig, title, height=320)


# ----------------------------------------------------------------------------------------------- explanations

HEAD_STATISTICS = {"space_px": "mean attention distance in space (pixels)",
                   "time_frames": "mean attention distance in time (frames)",
                   "entropy": "entropy (nats)", "to_cls": "attention to CLS"}


def head_statistics(layers: Sequence[str], stats: Mapping[str, np.ndarray], *, title: str | None = None) -> go.Figure:
    """Every head of every attention layer, one panel per statistic (the ViT paper's Fig. 7 for video): x = the
    layer in execution order, one dot per head. ``stats`` maps the keys of :data:`HEAD_STATISTICS` to
    ``(layers, heads)`` arrays, NaN where a layer has no such head or the statistic does not apply."""
    keys = [k for k in HEAD_STATISTICS if k in stats]
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=[HEAD_STATISTICS[k] for k in keys])
    x = list(range(len(layers)))
    heads = max((np.asarray(stats[k]).shape[1] for k in keys), default=0)
    for row, key in enumerate(keys, start=1):
        values = np.asarray(stats[key], dtype=np.float64)
        for h in range(heads):
            column = values[:, h] if h < values.shape[1] else np.full(len(layers), np.nan)
            fig.add_trace(go.Scatter(
                x=x, y=column, mode="markers", name=f"head {h}", legendgroup=f"head {h}", showlegend=row == 1,
                marker=dict(size=7), customdata=list(layers),
                hovertemplate="%{customdata}, head " + str(h) + "<br>%{y:.3f}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=list(layers), tickangle=-45, row=len(keys), col=1)
    return _layout(fig, title, height=max(360, 230 * len(keys)), subplot_titles=True)


def explanation_animation(frames: np.ndarray, heat: np.ndarray, *, title: str | None = None,
                          opacity: float = 0.55, color_title: str = "relevance") -> go.Figure:
    """A map laid over the clip as an animation with play/pause and a frame slider: ``frames`` ``(T, H, W, 3)``
    uint8, ``heat`` ``(T, H, W)`` on the frames (one colour scale for the whole clip)."""
    frames = np.asarray(frames)
    heat = np.asarray(heat, dtype=np.float64)
    zmin, zmax = float(np.nanmin(heat)), float(np.nanmax(heat))
    zmax = zmax if zmax > zmin else zmin + 1e-12

    def traces(f: int) -> list[go.BaseTraceType]:
        return [go.Image(source=png_data_uri(frames[f]), hoverinfo="skip"),
                go.Heatmap(z=heat[f], opacity=opacity, colorscale=_HEAT_SCALE, zmin=zmin, zmax=zmax,
                           colorbar=dict(title=color_title, thickness=12),
                           hovertemplate="y %{y}, x %{x}<br>%{z:.4g}<extra></extra>")]

    fig = go.Figure(data=traces(0), frames=[go.Frame(data=traces(f), name=str(f)) for f in range(len(frames))])
    step = dict(frame=dict(duration=250, redraw=True), transition=dict(duration=0), mode="immediate")
    fig.update_layout(
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.08, xanchor="left", direction="left",
                          buttons=[dict(label="▶ play", method="animate", args=[None, {**step, "fromcurrent": True}]),
                                   dict(label="❚❚ pause", method="animate", args=[[None], step])])],
        sliders=[dict(active=0, x=0.2, len=0.8, y=-0.02, currentvalue=dict(prefix="frame "),
                      steps=[dict(label=str(f), method="animate", args=[[str(f)], step])
                             for f in range(len(frames))])])
    height, width = frames.shape[1:3]
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    return _layout(fig, title, height=int(min(900, max(320, 560 * height / max(1, width) + 120))))


def zoo_scatter(groups: Mapping[str, Sequence[Mapping[str, Any]]], frontier: Sequence[Mapping[str, Any]], *,
                x_title: str, y_title: str = "top-1 (%)", log_x: bool = True, title: str | None = None) -> go.Figure:
    """The published zoo: one marker trace per group (a model family), each point ``{"name", "x", "y",
    "hover"}`` (the entry's name is the point's id), and the Pareto frontier as a staircase through its points."""
    fig = go.Figure()
    for group, rows in groups.items():
        fig.add_trace(go.Scatter(
            x=[r["x"] for r in rows], y=[r["y"] for r in rows], ids=[r["name"] for r in rows],
            customdata=[r["name"] for r in rows], hovertext=[r["hover"] for r in rows], mode="markers", name=group,
            marker=dict(size=11, line=dict(width=1, color="white")), hovertemplate="%{hovertext}<extra></extra>"))
    if frontier:
        fig.add_trace(go.Scatter(
            x=[r["x"] for r in frontier], y=[r["y"] for r in frontier], ids=[r["name"] for r in frontier],
            mode="lines", line=dict(shape="hv", dash="dot", color="#444"), name="Pareto frontier",
            hoverinfo="skip"))
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, xaxis_type="log" if log_x else "linear",
                      clickmode="event+select")
    return _layout(fig, title, height=560)
