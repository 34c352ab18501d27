"""The per-layer text table of a summary, with totals (the ``summary`` command prints it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cost.flops import FLOPS_CONVENTION, MACS_CONVENTION
from ..units import human, human_bytes, shape_text

if TYPE_CHECKING:
    from .summary import Summary


def summary_table(summary: "Summary", max_depth: int | None = None) -> str:
    """A readable per-layer table with totals. Rows show subtree totals so that containers read as the sum of what
    they hold; ``max_depth`` hides deeper rows."""
    rows = [("module", "type", "input", "output", "axes", "params", "MACs")]
    for r in summary.layers:
        if max_depth is not None and r.depth > max_depth:
            continue
        label = ("  " * r.depth + (r.name.rsplit(".", 1)[-1] if r.name else f"({summary.model})"))
        rows.append((label, r.type, shape_text(r.input_shape), shape_text(r.output_shape), r.layout,
                     f"{r.params_total:,}", human(r.macs_total, digits=2)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 5 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += [
        "",
        f"model         {summary.model} ({summary.family})",
        f"input         {tuple(summary.input_shape)} ({summary.input_layout})",
        f"params        {summary.params:,}",
        f"MACs          {summary.macs:,} ({summary.macs / 1e9:.2f} G) per view — {MACS_CONVENTION}",
        f"FLOPs         {summary.flops:,} ({summary.flops / 1e9:.2f} G) per view — {FLOPS_CONVENTION}",
        f"views         {summary.views}: {summary.macs_all_views / 1e9:.2f} GMACs, "
        f"{summary.flops_all_views / 1e12:.3f} TFLOPs over all views",
    ]
    mem = summary.forward_memory()
    lines.append(f"memory        {human_bytes(mem['total_bytes'])} at most for a forward on the CPU in float32 "
                 f"(weights {human_bytes(mem['weights_bytes'])}, activations {human_bytes(mem['activations_bytes'])}, "
                 f"runtime {human_bytes(mem['runtime_reserve_bytes'])})")
    return "\n".join(lines)


