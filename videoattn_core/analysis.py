"""Questions about a configuration that need no weights: will a run fit in memory, and how much will it cost.

Everything here is derived from a static :class:`~videoattn_core.inspection.Summary` (meta device) and from what
the machine reports; nothing allocates a model.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch


def available_memory(device: torch.device | str) -> int | None:
    """Free bytes on ``device`` (CUDA: free device memory; CPU: available RAM), or ``None`` when unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float | None) -> str:
    """``1536`` → ``"1.50 KiB"``; ``None`` → ``"–"``."""
    if n is None:
        return "–"
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{int(n)} B"


def memory_plan(summary: Any, device: torch.device | str, dtype_bytes: int = 4, *, captured: Sequence[str] = (),
                margin: float | None = None) -> dict[str, Any]:
    """The memory a one-view forward needs (``summary.memory_estimate``) against what ``device`` has free.

    ``fits`` is false when the estimate × ``margin`` exceeds the free memory; ``refusal`` then says so in words.
    Views run one after the other, so several views need no more than one.
    """
    from .runtime import MEMORY_MARGIN

    margin = MEMORY_MARGIN if margin is None else margin
    estimate = summary.memory_estimate(dtype_bytes, 1, captured=captured, explicit_attention=bool(captured))
    free = available_memory(device)
    fits = free is None or estimate["total"] * margin <= free
    out: dict[str, Any] = {**{f"{k}_bytes": v for k, v in estimate.items()}, "free_bytes": free,
                           "margin": margin, "fits": fits, "refusal": None}
    if not fits:
        out["refusal"] = (
            f"Refused before allocating anything: this run needs an estimated {format_bytes(estimate['total'])} "
            f"(weights {format_bytes(estimate['weights'])}, activations {format_bytes(estimate['activations'])}, "
            f"kept attention {format_bytes(estimate['attention'])}; × {margin:g} margin) but {torch.device(device)} "
            f"has {format_bytes(free)} free. Choose fewer frames, a smaller size or a smaller model.")
    return out
