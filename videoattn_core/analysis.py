"""Questions about a configuration that need no weights: will a run fit in memory, and how much will it cost.

Everything here is derived from a static :class:`~videoattn_core.inspection.Summary` (meta device) and from what
the machine reports; nothing allocates a model.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from .units import human_bytes as format_bytes


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


class _FusedAttentionOnMeta(TorchFunctionMode):
    """On the meta device ``F.scaled_dot_product_attention`` falls back to the explicit maths and would form the
    (N_q × N_k) matrix a fused kernel never holds; here it allocates what the fused CPU/CUDA kernels return
    instead: the output and the log-sum-exp per query row."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, v = args[0], args[2] if len(args) > 2 else kwargs["value"]
            out = q.new_empty((*q.shape[:-1], v.shape[-1]))
            q.new_empty(q.shape[:-1], dtype=torch.float32)  # logsumexp, freed as the kernel returns
            return out
        return func(*args, **kwargs)


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages that are alive while a forward runs, and their peak: every op's output
    storage is added when it first appears and subtracted when the last tensor on it is freed. Storages that
    existed before (``existing``: weights, buffers, the input) are not counted, views of them included."""

    def __init__(self, existing: Sequence[torch.Tensor] = ()):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, int] = {}
        self._existing = {t.untyped_storage()._cdata for t in existing}

    def _release(self, key: int, nbytes: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage._cdata, storage.nbytes()
                if key in self._existing:
                    continue
                if key not in self._refs:
                    self._refs[key] = 0
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                self._refs[key] += 1
                weakref.finalize(t, self._release, key, nbytes)
        return out


def forward_peak_bytes(config: Any, *, dtype: torch.dtype = torch.float32, batch: int = 1,
                       explicit_attention: bool = False, input_shape: Sequence[int] | None = None) -> int:
    """Peak bytes of the tensors a no-grad forward of ``config`` holds at once, beyond its weights and its
    input: the forward runs on the meta device (nothing is allocated) while every tensor the operators create
    is counted until it is freed. Fused attention holds its output, not the attention matrix; with
    ``explicit_attention`` the softmax path's matrices are counted as they are formed."""
    from .models.layers import set_fused_attention
    from .registry import build_model

    model = build_model(config, device="meta", dtype=dtype)
    set_fused_attention(model, not explicit_attention)
    shape = list(input_shape) if input_shape is not None else list(config.input_shape())
    shape[0] = batch
    x = torch.empty(shape, device="meta", dtype=dtype)
    tracker = _LiveBytes([*model.parameters(), *model.buffers(), x])
    with torch.no_grad(), _FusedAttentionOnMeta(), tracker:
        out = model(x)
        del out
    return tracker.peak


#: the allocator keeps freed blocks for reuse, so a forward's resident growth exceeds the peak of its live tensors;
#: bench/memory.py measured at most 1.2× beyond the first forward's runtime start-up on the CPU (warm forwards)
ALLOCATOR_SLACK = 1.25
#: what the CPU runtime allocates on a process's first forward besides tensors (thread pools, kernel caches,
#: oneDNN's scratchpads): up to ~165 MiB beyond the live tensors measured by bench/memory.py (MViT's first
#: forward; 25–75 MiB for the transformer-only families) on a 2-core machine
CPU_RUNTIME_RESERVE = 160 * 2**20


def memory_plan(summary: Any, device: torch.device | str, dtype_bytes: int = 4, *, captured: Sequence[str] = (),
                margin: float | None = None) -> dict[str, Any]:
    """The memory a one-view forward needs against what ``device`` has free.

    ``activations_bytes`` is the peak of the forward's live tensors (``summary.memory_estimate``, counted on the
    meta device) × :data:`ALLOCATOR_SLACK`; on the CPU :data:`CPU_RUNTIME_RESERVE` is added for the runtime's
    start-up. ``total_bytes`` (weights + activations + kept attention + reserve) is meant as an upper bound of
    what the forward takes (checked per preset by ``bench/memory.py``). ``fits`` is false when the total ×
    ``margin`` exceeds the free memory; ``refusal`` then says so in words. Views run one after the other, so
    several views need no more than one.
    """
    from .runtime import MEMORY_MARGIN

    margin = MEMORY_MARGIN if margin is None else margin
    device = torch.device(device)
    estimate = summary.memory_estimate(dtype_bytes, 1, captured=captured, explicit_attention=bool(captured))
    activations = int(estimate["activations"] * ALLOCATOR_SLACK)
    reserve = CPU_RUNTIME_RESERVE if device.type == "cpu" else 0
    total = estimate["weights"] + activations + estimate["attention"] + reserve
    free = available_memory(device)
    fits = free is None or total * margin <= free
    out: dict[str, Any] = {"weights_bytes": estimate["weights"], "activations_bytes": activations,
                           "live_tensor_peak_bytes": estimate["activations"], "attention_bytes": estimate["attention"],
                           "runtime_reserve_bytes": reserve, "total_bytes": total, "free_bytes": free,
                           "margin": margin, "fits": fits, "refusal": None}
    if not fits:
        out["refusal"] = (
            f"Refused before allocating anything: this run needs an estimated {format_bytes(total)} (weights "
            f"{format_bytes(estimate['weights'])}, activations {format_bytes(activations)}, kept attention "
            f"{format_bytes(estimate['attention'])}, runtime {format_bytes(reserve)}; × {margin:g} margin) but "
            f"{device} has {format_bytes(free)} free. Choose fewer frames, a smaller size or a smaller model.")
    return out
