"""Measured inspection: one real forward of a model on a clip, recorded per module with wall time and
``FlopCounterMode``'s FLOPs next to the analytic MACs, and the attention layers asked for captured."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..capture import capturing
from ..models.layers import CapturedAttention
from .axes import _AxisNamer
from .recorder import _Clock, _Recorder
from .records import LayerRecord, _build_records


@dataclass
class Inspection:
    """What :func:`inspect` returns.

    - ``logits``: the model's output for the clip (what ``model(x)`` returns; captured layers run the explicit
      softmax path, which computes the same function as the fused kernel up to float rounding);
    - ``layers``: :class:`LayerRecord` per module in execution order, with measured ``time_s``/``self_time_s``
      and ``measured_macs`` next to the analytic ``macs``;
    - ``attention``: requested name → :class:`CapturedAttention` (``probs`` ``(groups, heads, N_q, N_k)`` as the
      network computed them, ``kind``, and ``layout`` with the token grid, window and shift, pooled q/kv grids
      and whether a CLS token leads); ``attention_calls`` holds every call when a layer ran more than once;
    - ``time_s``: wall time of the whole forward; ``macs``: analytic total; ``measured_macs``: FlopCounterMode's
      total / 2 (or ``None`` when not measured).
    """

    logits: Any
    layers: list[LayerRecord]
    attention: dict[str, CapturedAttention]
    attention_calls: dict[str, list[CapturedAttention]]
    input_shape: tuple[int, ...]
    time_s: float
    macs: int
    measured_macs: int | None

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_rows(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.layers]


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention kernel, which FlopCounterMode has no formula for: the same two batched
    matmuls as its formula for the CUDA kernels (2 × (q·kᵀ + attn·v) multiply-adds)."""
    from ..flops import attention_macs

    return 2 * attention_macs(query_shape, key_shape, value_shape)


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    extra = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        extra[op] = _sdpa_cpu_flop
    return FlopCounterMode(display=False, custom_mapping=extra)


def inspect(model: nn.Module, x: Tensor, attention_layers: Sequence[str] = (), *,
            measure_macs: bool = True) -> Inspection:
    """Run ``model`` once on ``x`` and record everything the explorer shows about that forward.

    ``attention_layers`` names attention layers to capture (see :func:`attention_layers`; the name of an
    :class:`AttentionCore` itself works too). Only those take the explicit softmax path and keep their
    probabilities; everything else runs the fused kernel, so the forward costs little more than a plain one.
    ``measure_macs`` counts the forward's MACs with ``FlopCounterMode`` (its FLOPs / 2) per module. Runs under
    ``torch.no_grad()``; hooks and sinks are removed afterwards, also when the forward raises.
    Unknown layer names raise :class:`ConfigError` listing the capturable ones. Runs under the model's lock
    (:func:`videoattn_core.capture.model_lock`), so inspections, captures and :func:`~videoattn_core.runtime.classify`
    of one model never overlap.
    """
    device = x.device if isinstance(x, Tensor) else torch.device("cpu")
    clock = _Clock(device)
    counter = _flop_counter() if measure_macs else None
    with capturing(model, list(attention_layers)) as captured:
        recorder = _Recorder(model, clock=clock, flop_counter=counter)
        try:
            with torch.no_grad(), (counter if counter is not None else nullcontext()):
                start = time.perf_counter()
                logits = model(x)
                clock.finish()
                elapsed = time.perf_counter() - start
        finally:
            recorder.remove()

    calls = recorder.calls
    config = getattr(model, "config", None)
    input_layout = config.input_layout if isinstance(config, ModelConfig) else "B C T H W"
    has_head = config.has_head if isinstance(config, ModelConfig) else True
    batch = x.shape[0] if isinstance(x, Tensor) else 1
    namer = _AxisNamer(calls, batch, tuple(x.shape) if isinstance(x, Tensor) else (), input_layout, has_head)
    records = _build_records(model, calls, namer, clock=clock, measured=counter is not None)
    measured_total = None
    if counter is not None:
        measured_total = counter.get_total_flops() // 2
    return Inspection(
        logits=logits, layers=records, attention={n: c[0] for n, c in captured.by_layer.items() if c},
        attention_calls=captured.by_layer, input_shape=tuple(x.shape) if isinstance(x, Tensor) else (),
        time_s=elapsed, macs=sum(r.macs for r in records), measured_macs=measured_total)
