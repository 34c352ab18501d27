"""How a configuration's cost grows with its input: MACs (total and attention) against frames and image size for
this config and its other attention schemes, and the tokens each stage attends over. Counted from static summaries
(meta device): nothing allocates a model."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..inspection import summarize as default_summarize
from ..inspection.summary import cost_points
from ..units import shape_text


def attention_macs(summary: Any) -> int:
    return sum(r.macs for r in summary.layers if r.category == "attention")


def _points(current: int, factors: tuple[float, ...], multiple: int = 1, limit: int = 4096) -> list[int]:
    out = []
    for f in factors:
        p = max(multiple, int(round(current * f / multiple)) * multiple)
        if p <= limit and p not in out:
            out.append(p)
    return sorted(out)


Curves = tuple[dict[str, tuple[list[int], list[float]]], list[str], int]


def growth_curves(config: Any, axis: str, summarize: Any = None) -> Curves:
    """MACs of ``config`` against ``axis`` ("frames" or "size"): total and attention, plus the other attention
    schemes (``attention_type`` choices) dashed. ``summarize(config)`` gives the summary at the built input (default
    :func:`videoattn_core.inspection.summarize`; the app passes its cache). Points a model cannot take are skipped.
    Returns ``(series, dashed series names, the current value)``; see :func:`growth_curves_for`."""
    return growth_curves_for(config, (axis,), summarize)[axis]


def growth_curves_for(config: Any, axes: Sequence[str] = ("frames", "size"), summarize: Any = None
                      ) -> dict[str, Curves]:
    """:func:`growth_curves` of several axes at once: the other points are counted by
    :func:`videoattn_core.inspection.summary.cost_points` (the MACs of the same forward a summary records), from
    one model built per attention scheme for all axes; the current point of this config is the summary's own."""
    summarize = summarize or default_summarize
    base = summarize(config)
    points: dict[str, list[int]] = {}
    currents: dict[str, int] = {}
    for axis in axes:
        if axis == "frames":
            currents[axis] = base.frames or 1
            points[axis] = _points(currents[axis], (0.25, 0.5, 1, 2, 4), limit=1024)
        elif axis == "size":
            currents[axis] = int(base.input_shape[-1])
            points[axis] = _points(currents[axis], (0.5, 0.75, 1, 1.5, 2),
                                   multiple=32 if currents[axis] % 32 == 0 else 1)
        else:
            raise ValueError(f"axis must be frames or size, not {axis!r}")
    categories = {r.name: r.category for r in base.layers}
    out: dict[str, Curves] = {axis: ({}, [], currents[axis]) for axis in axes}

    def run(name: str, cfg: Any, dashed: bool) -> None:
        wanted = [(axis, p) for axis in axes for p in points[axis] if dashed or p != currents[axis]]
        costs = dict(zip(wanted, cost_points(cfg, [(p, None) if axis == "frames" else (None, p)
                                                   for axis, p in wanted], categories)))
        for axis in axes:
            if not dashed:
                costs[(axis, currents[axis])] = (base.macs, attention_macs(base))
            kept = [(p, costs[(axis, p)]) for p in points[axis] if costs[(axis, p)] is not None]
            if kept:
                series, names, _ = out[axis]
                series[f"{name}: total"] = ([p for p, _ in kept], [float(c[0]) for _, c in kept])
                series[f"{name}: attention"] = ([p for p, _ in kept], [float(c[1]) for _, c in kept])
                if dashed:
                    names += [f"{name}: total", f"{name}: attention"]

    attention_type = getattr(config, "attention_type", None)
    run(f"this config{f' ({attention_type})' if attention_type else ''}", config, dashed=False)
    spec = next((s for s in config.field_specs() if s.name == "attention_type"), None)
    for other in (spec.choices or ()) if spec is not None else ():
        if other == attention_type:
            continue
        try:
            alternative = config.replace(attention_type=other)
        except ConfigError:
            continue
        run(str(other), alternative, dashed=True)
    return out


def growth_note(series: dict[str, tuple[list[int], list[float]]], axis: str) -> str:
    """How much each curve grows when the input doubles along ``axis`` (read off the computed points)."""
    parts = []
    for name, (xs, ys) in series.items():
        pairs = dict(zip(xs, ys))
        for x in xs:
            if 2 * x in pairs and pairs[x] > 0:
                parts.append(f"{name} ×{pairs[2 * x] / pairs[x]:.2f}")
                break
    what = "frames" if axis == "frames" else "the side in pixels"
    return (f"Doubling {what} multiplies: " + "; ".join(parts) + ".") if parts else ""


def _attention_grids(summary: Any) -> list[tuple[tuple[int, int, int], bool]]:
    """Each distinct query grid the attention cores run on, in order, with whether it has a CLS token."""
    out: list[tuple[tuple[int, int, int], bool]] = []
    for r in summary.layers:
        layout = getattr(r, "attention_layout", None)
        if layout is None or r.type != "AttentionCore":
            continue
        grid = tuple(layout.q_grid or layout.grid)
        seen = next((i for i, (g, _) in enumerate(out) if g == grid), None)
        if seen is None:
            out.append((grid, bool(layout.cls)))
        elif layout.cls:  # divided attention: the temporal call has no CLS, the spatial one on the same grid has
            out[seen] = (grid, True)
    return out


def stage_tokens(summary: Any) -> list[tuple[str, int]]:
    """Tokens per stage: each distinct query grid the attention layers run on, in order (MViT pools it, Video
    Swin merges patches, TimeSformer keeps one), counted with the CLS token where there is one."""
    return [(f"stage {i}", int(np.prod(grid)) + (1 if cls else 0))
            for i, (grid, cls) in enumerate(_attention_grids(summary), 1)]


def stage_grids(summary: Any) -> str:
    """``"8×14×14 → 8×7×7"``: the stages' query grids."""
    return " → ".join(shape_text(grid) for grid, _ in _attention_grids(summary))
