"""Measured inspection: one real forward of a model on a clip, recorded per module with wall time and
``FlopCounterMode``'s FLOPs next to the analytic MACs, and the attention layers asked for captured.

``FlopCounterMode`` is a Python dispatch mode: on the real forward it puts every aten call through Python and
hooks every module of the process, a few per cent of a forward (interleaved A/B on one thread: 4–6 % for
videomae_s and swin3d_t). It counts from shapes alone, so it counts the same forward on a meta-device replica
of the model (the same modules and code, parameters without storage, a meta clip of the same shape and dtype: no
arithmetic), once per model and input shape (0.2–0.7 s of CPU for the base presets); the real forward then only
carries the recorder's hooks.
"""

from __future__ import annotations

import copy
import itertools
import time
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..attention.capture import capturing, eager_module, model_lock
from ..config import ModelConfig
from ..models.layers import AttentionCore, CapturedAttention
from .axes import AxisNamer
from .recorder import Call, Clock, Recorder
from .records import LayerRecord, build_records


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
      total / 2 (or ``None`` when not measured), counted on a meta-device replica of the model with the clip's
      shape (see the module docstring), per module likewise.
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
    from ..cost.flops import attention_macs

    return 2 * attention_macs(query_shape, key_shape, value_shape)


def _onednn_linear_flop(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of oneDNN's linear (``mkldnn._linear_pointwise``, which bfloat16 inference takes on the CPU:
    :class:`~videoattn_core.models.layers.Linear`): ``F.linear``'s product, 2 × rows × in × out."""
    from ..cost.flops import linear_macs

    return 2 * linear_macs(input_shape, weight_shape[0])


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    extra = {}
    for namespace, name, formula in (("aten", "_scaled_dot_product_flash_attention_for_cpu", _sdpa_cpu_flop),
                                     ("mkldnn", "_linear_pointwise", _onednn_linear_flop)):
        op = getattr(getattr(torch.ops, namespace), name, None)
        if op is not None:
            extra[op] = formula
    return FlopCounterMode(display=False, custom_mapping=extra)


#: per model: (input shape, dtype, training, parameter shapes) → the replica's per-call counts, in call order
_COUNTS: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[list[tuple[str, int, int]], int]]]" = \
    weakref.WeakKeyDictionary()


def _meta_replica(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers live on the meta device (nothing is copied), without
    the hooks and capture sinks that sit on the model (they are for its real forward)."""
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    replica = copy.deepcopy(model, memo)
    for module in replica.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks, module._backward_hooks,
                      module._backward_pre_hooks):
            hooks.clear()
        if isinstance(module, AttentionCore):
            module.sink = None
    return replica


def _counted_on_meta(model: nn.Module, x: Tensor) -> tuple[list[tuple[str, int, int]], int] | None:
    """``(name, FLOPs with children, FLOPs of children)`` per module call and the total, counted by
    ``FlopCounterMode`` on a meta replica of ``model`` fed a meta tensor shaped like ``x``; cached per model and
    input. ``None`` when the replica cannot run (then the real forward is counted instead)."""
    key = (tuple(x.shape), x.dtype, model.training,
           tuple((n, tuple(p.shape)) for n, p in model.named_parameters()))
    per_model = _COUNTS.setdefault(model, {})
    if key not in per_model:
        try:
            replica = _meta_replica(model)
            counter = _flop_counter()
            recorder = Recorder(replica, flop_counter=counter)
            try:
                with torch.no_grad(), counter:
                    replica(torch.empty(x.shape, dtype=x.dtype, device="meta"))
            finally:
                recorder.remove()
        except Exception:  # an op without a meta kernel, a data-dependent branch: count the real forward
            return None
        per_model[key] = ([(c.name, c.measured_total, c.children_measured) for c in recorder.calls],
                          counter.get_total_flops())
    return per_model[key]


def _apply_counts(calls: list[Call], counts: list[tuple[str, int, int]]) -> bool:
    """Put the replica's counts on the real forward's calls; False when the two forwards differ."""
    if [c.name for c in calls] != [name for name, _, _ in counts]:
        return False
    for call, (_, total, children) in zip(calls, counts):
        call.measured_total, call.children_measured = total, children
    return True


def inspect(model: nn.Module, x: Tensor, attention_layers: Sequence[str] = (), *,
            measure_macs: bool = True) -> Inspection:
    """Run ``model`` once on ``x`` and record everything the explorer shows about that forward.

    ``attention_layers`` names attention layers to capture (see :func:`attention_layers`; the name of an
    :class:`AttentionCore` itself works too). Only those take the explicit softmax path and keep their
    probabilities; everything else runs the fused kernel, so the forward costs little more than a plain one.
    ``measure_macs`` counts the forward's MACs with ``FlopCounterMode`` (its FLOPs / 2) per module, on a meta
    replica of the model with ``x``'s shape (cached per model and shape; the real forward is counted instead
    when the replica cannot run). Runs under ``torch.no_grad()``; hooks and sinks are removed afterwards, also
    when the forward raises. A compiled model (``build_model(..., compile=True)``) is inspected through its eager
    module (``model._orig_mod``): the hooks and the explicit softmax path need the eager forward.
    Unknown layer names raise :class:`ConfigError` listing the capturable ones. Runs under the model's lock
    (:func:`videoattn_core.attention.capture.model_lock`), so inspections, captures and :func:`~videoattn_core.run.runtime.classify`
    of one model never overlap.
    """
    model = eager_module(model)
    device = x.device if isinstance(x, Tensor) else torch.device("cpu")
    clock = Clock(device)
    with model_lock(model):
        counts = _counted_on_meta(model, x) if measure_macs and isinstance(x, Tensor) else None
        counter = _flop_counter() if measure_macs and counts is None else None
        with capturing(model, list(attention_layers)) as captured:
            recorder = Recorder(model, clock=clock, flop_counter=counter)
            try:
                with torch.no_grad(), (counter if counter is not None else nullcontext()):
                    start = time.perf_counter()
                    logits = model(x)
                    clock.finish()
                    elapsed = time.perf_counter() - start
            finally:
                recorder.remove()

        calls = recorder.calls
        measured_total = None
        if counter is not None:
            measured_total = counter.get_total_flops() // 2
        elif counts is not None:
            if _apply_counts(calls, counts[0]):
                measured_total = counts[1] // 2
            else:  # the replica's forward took another path than the real one: count nothing rather than guess
                counts = None
    measured = counter is not None or counts is not None
    config = getattr(model, "config", None)
    input_layout = config.input_layout if isinstance(config, ModelConfig) else "B C T H W"
    has_head = config.has_head if isinstance(config, ModelConfig) else True
    batch = x.shape[0] if isinstance(x, Tensor) else 1
    namer = AxisNamer(calls, batch, tuple(x.shape) if isinstance(x, Tensor) else (), input_layout, has_head)
    records = build_records(model, calls, namer, clock=clock, measured=measured)
    return Inspection(
        logits=logits, layers=records, attention={n: c[0] for n, c in captured.by_layer.items() if c},
        attention_calls=captured.by_layer, input_shape=tuple(x.shape) if isinstance(x, Tensor) else (),
        time_s=elapsed, macs=sum(r.macs for r in records), measured_macs=measured_total)
