"""What every figure shares: the cost categories' colours, the heat scale, the layout, images as PNG data
URIs."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import plotly.graph_objects as go


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


def png_data_uri(image: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 image as a PNG data URI (small in a figure's JSON, unlike a list of pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grid(n: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, n))
    return math.ceil(n / columns), columns
