"""Figures of predictions: the top-k and predictions over time."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

import plotly.graph_objects as go

from ._base import base_layout


#: a title's note is broken into lines of at most this many characters: at its 11 px they fit a chart in a
#: narrow column (side by side's top-k charts are about 280 px wide)
NOTE_LINE_CHARS = 40


def topk_bar(labels: Sequence[str], probabilities: Sequence[float], title: str | None = None,
             scoring: str = "softmax", color: str | None = None, note: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes, best on top; ``scoring="sigmoid"`` (a multi-label model) shows
    independent scores from 0 to 1 rather than shares of a distribution; ``color`` colours the bars (the model's
    family where models are compared). ``note`` (where the labels come from) stands under the title in small
    lines of :data:`NOTE_LINE_CHARS` characters, so that a narrow chart shows it whole instead of cutting it."""
    values = list(probabilities)[::-1]
    independent = scoring == "sigmoid"
    fig = go.Figure(go.Bar(x=values, y=list(labels)[::-1], orientation="h",
                           text=[f"{p:.3f}" if independent else f"{p:.1%}" for p in values], textposition="auto",
                           marker_color=color,
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>" if independent
                           else "%{y}: %{x:.2%}<extra></extra>"))
    fig.update_layout(xaxis_title="independent score (sigmoid)" if independent else "probability",
                      xaxis_range=[0, 1.05] if independent else
                      [0, max(1e-9, max(probabilities, default=1.0)) * 1.1])
    lines = textwrap.wrap(note or "", NOTE_LINE_CHARS)
    if lines:
        small = "<br>".join(f"<span style='font-size:11px'>{html.escape(line)}</span>" for line in lines)
        title = f"{title}<br>{small}" if title else small
    fig = base_layout(fig, title, height=max(200, 40 * len(labels) + 80) + 14 * len(lines))
    if lines:
        fig.update_layout(margin_t=fig.layout.margin.t + 14 * len(lines))
    return fig


def prediction_timeline(starts: Sequence[float], series: dict[str, Sequence[float]], title: str | None = None,
                        scoring: str = "softmax") -> go.Figure:
    """Probability of each named class in each window of a clip (window start in seconds on x)."""
    fig = go.Figure([go.Scatter(x=list(starts), y=list(values), mode="lines+markers", name=label,
                                hovertemplate=f"{label}<br>%{{x:.1f}} s: %{{y:.1%}}<extra></extra>")
                     for label, values in series.items()])
    y_title = "independent score (sigmoid)" if scoring == "sigmoid" else "probability"
    fig.update_layout(xaxis_title="window start (s)", yaxis_title=y_title, yaxis_range=[0, 1])
    return base_layout(fig, title, height=320)
