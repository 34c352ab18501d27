"""Figures of costs: where parameters and MACs sit, how they grow, configurations and catalog entries compared."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ..units import human
from ._base import BOTTOM_LEGEND, CATEGORY_COLORS, base_layout, family_color


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
    return base_layout(fig, title, height=420)


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
    # the legend at the figure's bottom edge, below the axis title (placed under the plot, it sat on the title)
    fig.update_layout(barmode="stack", xaxis_title="share (%)",
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", xanchor="left", x=0))
    fig = base_layout(fig, title, height=260)
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
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, legend=BOTTOM_LEGEND)
    if log_y:
        fig.update_yaxes(type="log", dtick=1, tickformat=".2s", minor=dict(showgrid=True))
    fig = base_layout(fig, title, height=360 + 22 * len(series))
    fig.update_layout(margin_b=40 + 22 * len(series))
    return fig


#: layer_times names its layers under their bars up to this many layers
NAMED_LAYERS = 16

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def shared_format(values: Sequence[float | None]) -> list[str]:
    """The numbers of one chart in one format: one decimal prefix for all (the largest value's), with enough
    decimals (0 to 3) that the smallest non-zero value keeps two significant digits, thousands separated:
    ``[1.6e3, 422.664]`` → ``["1,600", "423"]``, ``[28e6, 5.1e9]`` → ``["0.028 G", "5.100 G"]``, ``[1e6, 2e6]`` →
    ``["1.0 M", "2.0 M"]``; ``None`` → ``"–"``."""
    known = [abs(v) for v in values if v is not None and not math.isnan(v)]
    top = max(known, default=0.0)
    factor, prefix = next(((f, p) for f, p in _PREFIXES if top >= 1e4 and top >= f), (1.0, ""))
    smallest = min((v for v in known if v > 0), default=top) / factor
    digits = min(3, max(0, math.ceil(-math.log10(smallest)) + 1)) if smallest > 0 else 0
    return ["–" if v is None or math.isnan(v) else f"{v / factor:,.{digits}f}" + (f" {prefix}" if prefix else "")
            for v in values]


def _wrapped(label: str) -> str:
    """A long category label (``N. preset;field=value;…``) broken after each ``;`` and ``=`` so that it stands
    upright under its bar, in a column as narrow as its longest name, instead of being rotated."""
    return label.replace(";", ";<br>").replace("=", "=<br>")


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float | None]], *, y_title: str,
                 title: str | None = None, log_y: bool = False, colors: Sequence[str] | None = None) -> go.Figure:
    """Bars of one quantity per config (``series`` name -> value per group), labelled in one number format
    (:func:`shared_format`); ``colors`` colours the bars of each group (its model family)."""
    fig = go.Figure()
    labels = [_wrapped(g) for g in groups]
    for name, values in series.items():
        fig.add_bar(x=labels, y=[None if v is None else v for v in values], name=name,
                    text=shared_format(values), textposition="outside", cliponaxis=False,
                    marker_color=list(colors) if colors is not None else None,
                    hovertemplate="%{x}<br>%{text}<extra>" + name + "</extra>")
    fig.update_layout(barmode="group", yaxis_title=y_title, legend_orientation="h", showlegend=len(series) > 1)
    fig.update_xaxes(tickangle=0, automargin=True, tickfont_size=10)
    fig.update_yaxes(exponentformat="SI")  # the prefixes of the bar labels (G, not B)
    if log_y:
        fig.update_yaxes(type="log")
    fig = base_layout(fig, title, height=340 + 14 * max((lab.count("<br>") for lab in labels), default=0))
    fig.update_layout(margin_t=60 if title else 30)  # room for the labels above the tallest bar
    return fig


def token_counts(series: Mapping[str, Sequence[tuple[str, int]]], title: str | None = None,
                 colors: Sequence[str] | None = None) -> go.Figure:
    """Tokens per stage for each config: ``{"mvit_v2_s": [("stage 1", 25088), ...]}``; ``colors`` colours each
    config's line (its model family; configs of one family are told apart by their dash)."""
    fig = go.Figure()
    seen: dict[str, int] = {}
    for i, (name, stages) in enumerate(series.items()):
        color = colors[i] if colors is not None else None
        dash = ("solid", "dash", "dot", "dashdot")[seen.get(color, 0) % 4] if color else None
        seen[color] = seen.get(color, 0) + 1
        fig.add_scatter(x=[s for s, _ in stages], y=[n for _, n in stages], mode="lines+markers", name=name,
                        line=dict(color=color, dash=dash))
    fig.update_layout(xaxis_title="stage", yaxis_title="tokens", legend=BOTTOM_LEGEND)
    fig.update_yaxes(type="log", dtick=1, tickformat=".2s")
    return base_layout(fig, title, height=340)


def layer_times(names: Sequence[str], milliseconds: Sequence[float], categories: Sequence[str] | None = None,
                title: str | None = None) -> go.Figure:
    """Measured time per layer, in execution order: x is the layer's position, labelled with its name when there
    are at most :data:`NAMED_LAYERS` layers (more would overlap), else with its number and the name in the hover;
    one trace per cost category so that the legend names the colours."""
    names, milliseconds = list(names), list(milliseconds)
    categories = list(categories) if categories else ["other"] * len(names)
    fig = go.Figure()
    order = sorted(set(categories), key=lambda c: list(CATEGORY_COLORS).index(c) if c in CATEGORY_COLORS else 99)
    for category in order:
        picked = [i for i, c in enumerate(categories) if c == category]
        fig.add_bar(x=picked, y=[milliseconds[i] for i in picked], name=category, width=0.8,
                    customdata=[names[i] for i in picked],
                    marker_color=CATEGORY_COLORS.get(category, CATEGORY_COLORS["other"]),
                    hovertemplate="layer %{x}: %{customdata}<br>%{y:.3f} ms<extra>" + category + "</extra>")
    few = len(names) <= NAMED_LAYERS
    fig.update_layout(yaxis_title="ms", barmode="overlay", legend=BOTTOM_LEGEND, showlegend=True,
                      xaxis_title="layer in execution order" + ("" if few else " (hover a bar for its name)"))
    if few:
        fig.update_xaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=names, tickangle=-45)
    else:
        fig.update_xaxes(tickformat="d", range=[-0.5, len(names) - 0.5])
    fig = base_layout(fig, title, height=380 if few else 320)
    fig.update_layout(margin_b=90)
    return fig


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
    return base_layout(fig, title, height=340)


def zoo_scatter(groups: Mapping[str, Sequence[Mapping[str, Any]]], frontier: Sequence[Mapping[str, Any]], *,
                x_title: str, y_title: str = "top-1 (%)", log_x: bool = True, title: str | None = None) -> go.Figure:
    """The published zoo: one marker trace per group (a model family), each point ``{"name", "x", "y",
    "hover"}`` (the entry's name is the point's id), and the Pareto frontier as a staircase through its points."""
    fig = go.Figure()
    for group, rows in groups.items():
        fig.add_trace(go.Scatter(
            x=[r["x"] for r in rows], y=[r["y"] for r in rows], ids=[r["name"] for r in rows],
            customdata=[r["name"] for r in rows], hovertext=[r["hover"] for r in rows], mode="markers", name=group,
            marker=dict(size=11, color=family_color(group), line=dict(width=1, color="#444")),
            hovertemplate="%{hovertext}<extra></extra>"))
    if frontier:
        fig.add_trace(go.Scatter(
            x=[r["x"] for r in frontier], y=[r["y"] for r in frontier], ids=[r["name"] for r in frontier],
            mode="lines", line=dict(shape="hv", dash="dot", color="#444"), name="Pareto frontier",
            hoverinfo="skip"))
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, xaxis_type="log" if log_x else "linear",
                      clickmode="event+select")
    return base_layout(fig, title, height=560)
