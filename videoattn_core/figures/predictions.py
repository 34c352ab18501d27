"""Figures of predictions: the top-k and predictions over time."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ._base import _layout


def topk_bar(labels: Sequence[str], probabilities: Sequence[float], title: str | None = None,
             scoring: str = "softmax", color: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes, best on top; ``scoring="sigmoid"`` (a multi-label model) shows
    independent scores from 0 to 1 rather than shares of a distribution; ``color`` colours the bars (the model's
    family where models are compared)."""
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
    return _layout(fig, title, height=max(200, 40 * len(labels) + 80))


def prediction_timeline(starts: Sequence[float], series: dict[str, Sequence[float]], title: str | None = None,
                        scoring: str = "softmax") -> go.Figure:
    """Probability of each named class in each window of a clip (window start in seconds on x)."""
    fig = go.Figure([go.Scatter(x=list(starts), y=list(values), mode="lines+markers", name=label,
                                hovertemplate=f"{label}<br>%{{x:.1f}} s: %{{y:.1%}}<extra></extra>")
                     for label, values in series.items()])
    y_title = "independent score (sigmoid)" if scoring == "sigmoid" else "probability"
    fig.update_layout(xaxis_title="window start (s)", yaxis_title=y_title, yaxis_range=[0, 1])
    return _layout(fig, title, height=320)
