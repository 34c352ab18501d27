"""Every figure of the app, as pure functions from numbers and arrays to Plotly figures (one package: costs,
frames, predictions).

Nothing here computes model quantities: the callers hand in what :mod:`videoattn_core.inspection` and
:mod:`videoattn_core.attention.maps` computed (per-layer costs, attention maps on the token grid, window
boxes), and these functions only lay them out. Frame images travel as PNG data URIs, attention maps at
token resolution (each token drawn as a block over its pixels), so a figure stays small enough to redraw
while a slider moves.

Conventions: images are ``(T, H, W, 3)`` uint8; attention maps ``(T', h, w)`` floats on the token grid,
``NaN`` where the query cannot attend (drawn transparent); boxes ``(t0, t1, y0, y1, x0, x1)`` in token
coordinates, end-exclusive.
"""

from ..units import human  # noqa: F401  (pages and tests use figures.human)
from ._base import (CATEGORY_COLORS, FAMILY_COLORS, HEAD_COLORS, HEAT_SCALE, NEAR_CONSTANT,  # noqa: F401
                    family_color, head_color, heat_range, png_data_uri, theme_safe)
from .costs import (category_bars, cost_breakdown, cost_curves, grouped_bars, layer_times,  # noqa: F401
                    macs_agreement, shared_format, token_counts, zoo_scatter)
from .frames import (HEAD_STATISTICS, attention_overlay, bias_tables, explanation_animation,  # noqa: F401
                     frames_strip, head_statistics, temporal_matrix, token_time_index)
from .evaluation import confusion_heatmap, per_class_accuracy  # noqa: F401
from .predictions import prediction_timeline, topk_bar  # noqa: F401
