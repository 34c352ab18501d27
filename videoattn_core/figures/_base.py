"""What every figure shares: the cost categories' colours, the model families' and heads' colours, the heat scale
and its honest range, the layout, images as PNG data URIs."""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass

import numpy as np
import plotly.colors
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

#: one fixed colour per model family, the same on every page and every dataset (Zoo, Compare, Side by side): the
#: eight colours of Okabe & Ito's colour-blind-safe palette ("Color Universal Design", 2008), one per family
FAMILY_COLORS = {
    "timesformer": "#0072B2",   # blue
    "mvit": "#D55E00",          # vermillion
    "swin3d": "#009E73",        # bluish green
    "swin_divided": "#56B4E9",  # sky blue
    "vivit": "#E69F00",         # orange
    "videomae": "#CC79A7",      # reddish purple
    "vjepa2": "#000000",        # black
    "fiery": "#F0E442",         # yellow
}
#: a family the palette does not name yet (Okabe–Ito's grey is not one of the eight above)
OTHER_FAMILY_COLOR = "#999999"

#: sixteen distinct colours for the heads of a layer, in head order: Paul Tol's discrete rainbow for 16 colours
#: ("Colour Schemes", SRON/EPS/TN/09-002, fig. 22), built to stay distinguishable as a set
HEAD_COLORS = ("#D1BBD7", "#BA8DB4", "#AA6F9E", "#882E72", "#1965B0", "#5289C7", "#7BAFDE", "#4EB265",
               "#90C987", "#CAE0AB", "#F7F056", "#F6C141", "#F1932D", "#E8601C", "#DC050C", "#72190E")
#: marker symbols that tell apart heads beyond the sixteenth (head h: colour h % 16, symbol h // 16)
HEAD_SYMBOLS = ("circle", "diamond", "square", "triangle-up")


def family_color(family: str) -> str:
    return FAMILY_COLORS.get(family, OTHER_FAMILY_COLOR)


def head_color(head: int) -> str:
    return HEAD_COLORS[head % len(HEAD_COLORS)]


# Streamlit's chart theme (``st.plotly_chart``'s default ``theme="streamlit"``) writes placeholder colours
# ``#000001``..``#000040`` into its template and then replaces every occurrence of those strings in the figure's
# JSON with its own palette. A colour of ours that happens to be one of them is repainted: Inferno's dark end,
# ``#000004``, arrives in the browser as the theme's fourth categorical colour, ``#ffabab``. Such colours are
# written as ``rgb(...)``, the same colour in a spelling the theme leaves alone.
_THEME_PLACEHOLDER = re.compile(r"#0000[0-9a-fA-F]{2}")


def theme_safe(color: str) -> str:
    """``color`` unchanged, or, when Streamlit's theme would repaint it, the same colour as ``rgb(r, g, b)``."""
    if isinstance(color, str) and _THEME_PLACEHOLDER.fullmatch(color):
        r, g, b = plotly.colors.hex_to_rgb(color)
        return f"rgb({r}, {g}, {b})"
    return color


def _scale(colors: list[str]) -> list[list]:
    last = max(1, len(colors) - 1)
    return [[i / last, theme_safe(c)] for i, c in enumerate(colors)]


#: the heat scale of every map, dark (low) to bright (high): Plotly's Inferno (matplotlib's), its stops spelled so
#: that Streamlit's theme leaves them as they are
HEAT_SCALE = _scale(list(plotly.colors.sequential.Inferno))

#: a map whose values span less than this fraction of their magnitude is drawn as one colour, not stretched
NEAR_CONSTANT = 1e-3


@dataclass(frozen=True)
class HeatRange:
    """The colour range of a map: ``zmin``/``zmax`` and the colour bar's title, which says when the map is
    (nearly) constant and by how much it varies."""

    zmin: float
    zmax: float
    title: str
    flat: bool


def heat_range(values: np.ndarray, title: str) -> HeatRange:
    """The colour range of a map: its finite minimum to maximum, unless it is constant or varies by less than
    :data:`NEAR_CONSTANT` of its magnitude. Then stretching it to the whole scale would paint rounding noise in
    full contrast: the values sit in the middle of a range as wide as their magnitude (one colour), and the colour
    bar's title says "nearly constant" with the measured spread relative to the mean."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return HeatRange(0.0, 1.0, title, False)
    lo, hi = float(finite.min()), float(finite.max())
    spread, magnitude = hi - lo, max(abs(lo), abs(hi))
    if spread > NEAR_CONSTANT * magnitude:
        return HeatRange(lo, hi, title, False)
    mean = float(finite.mean())
    half = magnitude / 2 if magnitude > 0 else 1.0
    if spread == 0:
        note = f"constant: {mean:.4g}"
    else:
        note = f"nearly constant:<br>range {spread / abs(mean):.0e}<br>of the mean {mean:.4g}"
    return HeatRange(mean - half, mean + half, f"{title}<br>{note}", True)


BOTTOM_LEGEND = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0)


def base_layout(fig: go.Figure, title: str | None = None, height: int | None = None,
            subplot_titles: bool = False) -> go.Figure:
    top = (40 if title else 10) + (30 if subplot_titles else 0)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=top, b=10), template="plotly_white")
    if height is not None:
        fig.update_layout(height=height)
    for trace in fig.data:  # every colour scale, also one a builder names, as Streamlit's theme leaves it
        scale = getattr(trace, "colorscale", None)
        if scale:
            trace.colorscale = [[stop, theme_safe(color)] for stop, color in scale]
    return fig


def png_data_uri(image: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 image as a PNG data URI (small in a figure's JSON, unlike a list of pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def grid_layout(n: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, n))
    return math.ceil(n / columns), columns
