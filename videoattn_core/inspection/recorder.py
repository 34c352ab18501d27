"""Forward hooks that record every module call of one forward: shapes, analytic MACs, and (for
:func:`~videoattn_core.inspection.inspect`) wall time and measured FLOPs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..cost.flops import module_macs
from ..models.layers import AttentionCore, AttentionLayout


@dataclass
class Call:
    """One module call as the hooks saw it."""

    name: str
    module: nn.Module
    order: int
    parent: "Call | None"
    input_shapes: tuple[tuple[int, ...], ...] = ()
    input_elems: int = 0
    output_shape: tuple[int, ...] | None = None
    output_elems: int = 0
    macs: int = 0
    layout: AttentionLayout | None = None
    end_order: int = 0
    attention_elems: int = 0  # elements of the (G, h, N_q, N_k) matrix an explicit attention materialises
    fused: bool = True
    # measured (inspect only)
    t_start: Any = None
    t_end: Any = None
    children_time: float = 0.0
    flops_start: int = 0
    measured_total: int = 0
    children_measured: int = 0


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        for v in value.values():
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _find_layout(args: tuple, kwargs: dict) -> AttentionLayout | None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, AttentionLayout):
            return v
    return None


class Recorder:
    """Forward hooks on every module of a model: one :class:`Call` per module call, in execution order.

    Hooks are registered on the model's own modules (never globally, so other models and threads are not
    affected) and removed by :meth:`remove`, which callers run in a ``finally``.

    Measured FLOPs per module are the growth of ``FlopCounterMode``'s total (``get_total_flops()``, counted by
    a thread-local dispatch mode) between a call's two hooks. Its own per-module table (``get_flop_counts()``)
    is not used: its module tracker hooks every module of the process and names modules by class path
    (``TimeSformer.blocks.0``), so a forward of another model of the same class in another thread — another
    session of the app — is booked into, or taken out of, this model's modules.
    """

    def __init__(self, model: nn.Module, clock: "Clock | None" = None, flop_counter: Any = None):
        self.model = model
        self.names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
        self.calls: list[Call] = []
        self.stack: list[Call] = []
        self.clock = clock
        self.flop_counter = flop_counter
        self.handles = []
        for module in dict.fromkeys(self.names):
            self.handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._post, with_kwargs=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _measured_flops(self) -> int:
        return self.flop_counter.get_total_flops()

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        call = Call(self.names[module], module, len(self.calls), self.stack[-1] if self.stack else None)
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]
        call.input_shapes = tuple(tuple(t.shape) for t in tensors)
        call.input_elems = sum(t.numel() for t in tensors)
        if isinstance(module, AttentionCore):
            call.layout = _find_layout(args, kwargs)
            call.fused = module.fused and module.sink is None
        self.calls.append(call)
        self.stack.append(call)
        if self.flop_counter is not None:
            call.flops_start = self._measured_flops()
        if self.clock is not None:
            call.t_start = self.clock.now()

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if self.clock is not None:
            t_end = self.clock.now()
        call = self.stack.pop()
        if self.clock is not None:
            call.t_end = t_end
        if self.flop_counter is not None:
            call.measured_total = self._measured_flops() - call.flops_start
            if call.parent is not None:
                call.parent.children_measured += call.measured_total
        out = _first_tensor(output)
        if out is not None:
            call.output_shape = tuple(out.shape)
            call.output_elems = out.numel()
        inputs = tuple(v for v in args) + tuple(v for v in kwargs.values() if isinstance(v, Tensor))
        call.macs = module_macs(module, inputs, output) or 0
        if isinstance(module, AttentionCore) and len(call.input_shapes) >= 2:
            q, k = call.input_shapes[0], call.input_shapes[1]
            call.attention_elems = math.prod(q[:-1]) * k[-2]
        call.end_order = len(self.calls)


class Clock:
    """Wall time on the CPU; CUDA events on a GPU (recorded asynchronously, read after one synchronise)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def elapsed(self, start: Any, end: Any) -> float:
        if self.cuda:
            return start.elapsed_time(end) / 1000.0
        return end - start

    def finish(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
