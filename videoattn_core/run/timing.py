"""Measured forwards: the wall time and peak memory of one forward of a config with random weights (the Compare
page's "measure" and the zoo's measured seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..cost.memory import LiveBytes
from ..cost.zoo import ZooPoint
from ..weights.lookup import entry_config
from .devices import DTYPES
from .runtime import build_seeded


def measure_forward(config: Any, device: str = "cpu", dtype: str = "float32") -> dict[str, float]:
    """Wall time of one forward (after a warm-up forward) and its peak memory — weights, input and the tensors it
    holds at once — with random weights (seed 0) on a random clip of the config's input shape. Peak: CUDA's
    allocator peak on a GPU; on the CPU the weights and input plus the live tensors counted as the warm-up forward
    runs."""
    dev = torch.device(device)
    model = build_seeded(config, 0).to(device=dev, dtype=DTYPES[dtype]).eval()
    x = torch.randn(config.input_shape(), generator=torch.Generator().manual_seed(0)).to(dev, DTYPES[dtype])
    with torch.no_grad():
        if dev.type == "cuda":
            model(x)
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            start = time.perf_counter()
            model(x)
            torch.cuda.synchronize(dev)
            return {"time_s": time.perf_counter() - start, "peak_bytes": float(torch.cuda.max_memory_allocated(dev)),
                    "baseline_bytes": float(base)}
        tracker = LiveBytes([*model.parameters(), *model.buffers(), x])
        with tracker:
            out = model(x)
            del out
        start = time.perf_counter()
        model(x)
        held = sum(t.untyped_storage().nbytes() for t in (*model.parameters(), *model.buffers(), x))
        return {"time_s": time.perf_counter() - start, "peak_bytes": float(held + tracker.peak),
                "baseline_bytes": float(held)}


def measured_seconds(points_: Sequence[ZooPoint], device: str = "cpu", dtype: str = "float32", *,
                     measure: Callable[[Any, str, str], Mapping[str, float]] | None = None,
                     check: Callable[[ZooPoint], str | None] | None = None,
                     progress: Callable[[int, ZooPoint], None] | None = None
                     ) -> tuple[dict[str, float], dict[str, str]]:
    """One forward per point (random weights, the entry's input shape), one after the other: seconds per name,
    and the refusal of each point ``check`` refused (its memory estimate does not fit) without building it."""
    measure = measure or (lambda config, dev, dt: measure_forward(config, dev, dt))
    seconds, refused = {}, {}
    for i, p in enumerate(points_):
        if progress is not None:
            progress(i, p)
        refusal = check(p) if check is not None else None
        if refusal:
            refused[p.name] = refusal
            continue
        seconds[p.name] = float(measure(entry_config(p.name), device, dtype)["time_s"])
    return seconds, refused
