"""Figures of an evaluation: per-class top-1 and the confusion matrix (from :mod:`videoattn_core.evaluation`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._base import HEAT_SCALE, base_layout, heat_range


def per_class_accuracy(labels: Sequence[str], accuracy: Sequence[float], clips: Sequence[int],
                       title: str | None = None, mean: float | None = None) -> go.Figure:
    """Horizontal bars of each class's top-1, the worst on top, with its number of clips in the hover; ``mean``
    (the mean class accuracy) as a dashed line."""
    order = np.argsort(np.asarray(accuracy, dtype=float), kind="stable")[::-1]  # plotly draws the last bar on top
    fig = go.Figure(go.Bar(x=[accuracy[i] for i in order], y=[labels[i] for i in order], orientation="h",
                           customdata=[clips[i] for i in order], marker_color="#0072B2",
                           hovertemplate="%{y}: %{x:.1%} of %{customdata} clips<extra></extra>"))
    if mean is not None:
        fig.add_vline(x=mean, line_dash="dash", line_color="#D55E00",
                      annotation_text=f"mean class accuracy {mean:.1%}", annotation_position="top")
    fig.update_xaxes(title="top-1", range=[0, 1.02], tickformat=".0%")
    return base_layout(fig, title, height=max(240, 22 * len(labels) + 100))


def confusion_heatmap(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str | None = None,
                      normalise: bool = True) -> go.Figure:
    """The confusion matrix (rows: true class, columns: predicted class), each row as shares of its clips when
    ``normalise`` (classes with few clips weigh as much as the others), else clip counts; zero cells transparent."""
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) if normalise else counts
    shown = np.where(counts > 0, values, np.nan)
    scale = heat_range(shown, "share of the true class" if normalise else "clips")
    names = list(labels)
    fig = go.Figure(go.Heatmap(
        z=shown, x=names, y=names, customdata=counts, colorscale=HEAT_SCALE, zmin=scale.zmin, zmax=scale.zmax,
        colorbar=dict(title=scale.title, thickness=12), hoverongaps=False,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata:.0f} clips"
                      + (" (%{z:.1%})" if normalise else "") + "<extra></extra>"))
    side = max(360, min(900, 18 * len(names) + 200))
    fig.update_xaxes(title="predicted class", showticklabels=len(names) <= 60, tickangle=-45)
    fig.update_yaxes(title="true class", autorange="reversed", showticklabels=len(names) <= 60)
    return base_layout(fig, title, height=side)
