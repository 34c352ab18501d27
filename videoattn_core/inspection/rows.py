"""The per-layer tables of a summary or an inspection as rows (the pages' tables, the CSV the app and the
``summary`` command write), and the table of every preset."""

from __future__ import annotations

import csv
import io
from typing import Any

from ..registry import build_model, get_preset, list_models
from ..units import shape_text


def leaf_rows(summary: Any) -> list[dict[str, Any]]:
    """The records cost charts sum (leaves and modules owning parameters), with their own counts."""
    return [{"name": r.name or "(model)", "category": r.category, "params": r.params, "macs": r.macs}
            for r in summary.leaves()]


def layer_rows(summary: Any) -> list[dict[str, Any]]:
    """The per-layer table: one row per module, shapes with their axis meaning, own and total counts."""
    return [{"name": r.name or "(model)", "type": r.type, "depth": r.depth, "input shape": shape_text(r.input_shape),
             "output shape": shape_text(r.output_shape), "axes": r.layout, "params": r.params_total,
             "MACs": r.macs_total, "own params": r.params, "own MACs": r.macs, "category": r.category}
            for r in summary.layers]


def measured_rows(result: Any) -> list[dict[str, Any]]:
    """The measured per-layer table of an inspection: shapes, time, analytic against measured MACs."""
    return [{"name": r.name or "(model)", "type": r.type, "input shape": shape_text(r.input_shape),
             "output shape": shape_text(r.output_shape), "axes": r.layout,
             "time (ms)": round(1e3 * r.time_s, 3) if r.time_s is not None else None,
             "own time (ms)": round(1e3 * r.self_time_s, 3) if r.self_time_s is not None else None,
             "analytic MACs": r.macs_total, "measured MACs": r.measured_macs_total}
            for r in result.layers]


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of table rows; the header holds every key of any row, in the order they first appear (a row
    without a key leaves its cell empty)."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def preset_rows() -> list[dict[str, Any]]:
    """Every preset with its description and parameter count (built on the meta device: no weights)."""
    return [{"preset": name, "description": get_preset(name).description,
             "parameters": sum(p.numel() for p in build_model(name, device="meta").parameters())}
            for name in list_models()]
