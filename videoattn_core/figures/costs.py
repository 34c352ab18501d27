"""Figures of costs: where parameters and MACs sit, how they grow, configurations and catalog entries compared."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ..units import human
from ._base import _BOTTOM_LEGEND, CATEGORY_COLORS, _layout


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
