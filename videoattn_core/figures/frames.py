"""Figures over the frames: the clip, attention maps and explanations laid over it, temporal matrices, bias
tables and head statistics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._base import HEAD_SYMBOLS, HEAT_SCALE, grid_layout, base_layout, head_color, heat_range, png_data_uri


def _grid_rows(rows: int, row_px: float, titled: bool, title: str | None) -> tuple[float, int]:
    """``(vertical_spacing, height)`` of a grid of ``rows`` image rows ``row_px`` high: a gap between rows wide
    enough for the next row's subplot titles (they sit above their images, so a gap given as a fraction of a
    short figure let them cover the row above), and the margins :func:`base_layout` sets."""
    gap = 26 if titled else 6
    plot = rows * row_px + (rows - 1) * gap
    top = (40 if title else 10) + (30 if titled else 0)
    return (gap / plot if rows > 1 else 0.0), int(plot + top + 10)


def frames_strip(frames: np.ndarray, titles: Sequence[str] | None = None, columns: int = 8,
                 title: str | None = None) -> go.Figure:
    """The sampled frames as a grid of small images."""
    n = len(frames)
    rows, cols = grid_layout(n, columns)
    titles = list(titles) if titles is not None else [f"frame {i}" for i in range(n)]
    row_px = min(max((900 / cols) * frames.shape[1] / max(1, frames.shape[2]), 60), 840 / rows)
    spacing, height = _grid_rows(rows, row_px, True, title)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=spacing)
    for i, frame in enumerate(frames):
        fig.add_trace(go.Image(source=png_data_uri(frame), hoverinfo="skip"), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, title, height=height, subplot_titles=True)


def token_time_index(frame: int, frames: int, token_times: int) -> int:
    """Which temporal token slice covers frame ``frame`` when ``frames`` frames became ``token_times`` slices
    (tubelets and temporal pooling merge consecutive frames)."""
    return min(token_times - 1, frame * token_times // max(1, frames))


def attention_overlay(frames: np.ndarray, heat: np.ndarray, *, show: Sequence[int] | None = None,
                      boxes: Iterable[Sequence[int]] = (), query: tuple[int, int, int] | None = None,
                      query_grid: tuple[int, int, int] | None = None, columns: int = 4, opacity: float = 0.55,
                      title: str | None = None, color_title: str = "attention", shared_scale: bool = True,
                      titles: Sequence[str] | None = None) -> go.Figure:
    """Attention laid over the frames.

    ``heat`` is ``(T', h, w)`` on the token grid; frame ``f`` shows slice ``token_time_index(f, T, T')``,
    each token drawn as a block over the pixels it covers. ``NaN`` entries are transparent. ``boxes`` are
    drawn as rectangles on the frames they span; ``query`` ``(t, y, x)`` is marked, in the coordinates of
    ``query_grid`` when the queries sit on another grid than the keys (pooled attention), else of ``heat``.
    ``titles``: one per shown frame (default ``frame <f>``).
    """
    frames = np.asarray(frames)
    heat = np.asarray(heat, dtype=np.float64)
    t_frames, height, width = frames.shape[:3]
    t_tok, h_tok, w_tok = heat.shape
    show = list(range(t_frames)) if show is None else [f for f in show if 0 <= f < t_frames]
    rows, cols = grid_layout(len(show), columns)
    dx, dy = width / w_tok, height / h_tok
    scale = heat_range(heat, color_title)
    boxes = [tuple(int(v) for v in b) for b in boxes]
    q_t, q_h, q_w = query_grid or heat.shape
    qdx, qdy = width / q_w, height / q_h
    single = len(show) == 1 and titles is None  # one frame needs no title, unless one is given
    row_px = min(max(min(900 / cols, 560) * height / max(1, width), 160 / rows), 1340 / rows)
    spacing, fig_height = _grid_rows(rows, row_px, not single, title)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=spacing,
                        subplot_titles=None if single else list(titles or (f"frame {f}" for f in show)))
    for i, f in enumerate(show):
        r, c = i // cols + 1, i % cols + 1
        t = token_time_index(f, t_frames, t_tok)
        fig.add_trace(go.Image(source=png_data_uri(frames[f]), x0=0.5, y0=0.5, hoverinfo="skip"), row=r, col=c)
        fig.add_trace(go.Heatmap(
            z=heat[t], x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, opacity=opacity, colorscale=HEAT_SCALE,
            zmin=scale.zmin if shared_scale else None, zmax=scale.zmax if shared_scale else None, showscale=i == 0,
            colorbar=dict(title=scale.title if shared_scale else color_title, thickness=12),
            customdata=_token_coords(t, h_tok, w_tok),
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
    return base_layout(fig, title, height=fig_height, subplot_titles=not single)


def _token_coords(t: int, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([np.full_like(ys, t), ys, xs], axis=-1)


def temporal_matrix(matrix: np.ndarray, *, title: str | None = None, highlight: int | None = None) -> go.Figure:
    """A ``(T, T)`` attention of one patch position across frames: row = query frame, column = key frame."""
    matrix = np.asarray(matrix, dtype=np.float64)
    n = matrix.shape[0]
    scale = heat_range(matrix, "attention")
    fig = go.Figure(go.Heatmap(z=matrix, x=list(range(n)), y=list(range(n)), colorscale=HEAT_SCALE,
                               zmin=scale.zmin, zmax=scale.zmax, colorbar=dict(title=scale.title, thickness=12),
                               hovertemplate="query frame %{y} → key frame %{x}<br>%{z:.4f}<extra></extra>"))
    if highlight is not None and 0 <= highlight < n:
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=highlight - 0.5, y1=highlight + 0.5,
                      line=dict(color="#39ff14", width=2))
    fig.update_xaxes(title="key frame", dtick=1 if n <= 32 else None, range=[-0.5, n - 0.5], constrain="domain")
    fig.update_yaxes(title="query frame", range=[n - 0.5, -0.5], scaleanchor="x", constrain="domain",
                     dtick=1 if n <= 32 else None)
    return base_layout(fig, title, height=420)


def bias_tables(tables: Mapping[str, np.ndarray], *, x_title: str = "head", y_title: str = "relative offset",
                x_offsets: Sequence[int] | None = None, y_offsets: Sequence[int] | None = None,
                title: str | None = None, columns: int = 3) -> go.Figure:
    """Relative position tables (each 2-D, rows × columns) as heatmaps side by side, sharing one colour scale
    centred on 0. ``x_offsets``/``y_offsets`` label the columns/rows with their offsets (query − key)."""
    names = list(tables)
    rows, cols = grid_layout(max(1, len(names)), columns)
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
    return base_layout(fig, title, height=max(320, 300 * rows))


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
                marker=dict(size=7, color=head_color(h), symbol=HEAD_SYMBOLS[h // 16 % len(HEAD_SYMBOLS)],
                            line=dict(width=0.5, color="#444")), customdata=list(layers),
                hovertemplate="%{customdata}, head " + str(h) + "<br>%{y:.3f}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=list(layers), tickangle=-45, row=len(keys), col=1)
    return base_layout(fig, title, height=max(360, 230 * len(keys)), subplot_titles=True)


def explanation_animation(frames: np.ndarray, heat: np.ndarray, *, title: str | None = None,
                          opacity: float = 0.55, color_title: str = "relevance") -> go.Figure:
    """A map laid over the clip as an animation with play/pause and a frame slider: ``frames`` ``(T, H, W, 3)``
    uint8, ``heat`` ``(T, H, W)`` on the frames (one colour scale for the whole clip)."""
    frames = np.asarray(frames)
    heat = np.asarray(heat, dtype=np.float64)
    scale = heat_range(heat, color_title)

    def traces(f: int) -> list[go.BaseTraceType]:
        return [go.Image(source=png_data_uri(frames[f]), hoverinfo="skip"),
                go.Heatmap(z=heat[f], opacity=opacity, colorscale=HEAT_SCALE, zmin=scale.zmin, zmax=scale.zmax,
                           colorbar=dict(title=scale.title, thickness=12),
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
    return base_layout(fig, title, height=int(min(900, max(320, 560 * height / max(1, width) + 120))))
