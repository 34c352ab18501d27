"""Attention capture: the one place where sinks are put on (and taken off) a model's attention cores.

Sinks live on the model (:attr:`~videoattn_core.models.layers.AttentionCore.sink`), and the app shares one model
between sessions, so every capture — :func:`~videoattn_core.inspection.inspect`, rollout and
:func:`~videoattn_core.attention.maps.capture_all`, head statistics, explanations — runs under the model's own
lock (:func:`model_lock`), as do plain forwards through :func:`~videoattn_core.run.runtime.classify`: a forward
never sees another thread's sinks or hooks.
"""

from __future__ import annotations

import functools
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from torch import nn

from ..errors import ConfigError
from ..models.layers import AttentionCore, AttentionLayout, CapturedAttention, GradientBlocks


def eager_module(model: nn.Module) -> nn.Module:
    """The eager module of a compiled model (``torch.compile``'s ``_orig_mod``, also what
    ``build_model(..., compile=True)`` wraps), else ``model`` itself: captures, hooks and locks work on it."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock of ``model``: held while sinks or hooks sit on it, and by plain forwards of shared models.

    Re-entrant, so code that holds it (a page running several steps on one model) can call the core, which
    takes it again."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def attention_owners(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that have an :class:`AttentionCore` as a direct child: the capturable attention layers."""
    return {name: module for name, module in eager_module(model).named_modules()
            if any(isinstance(child, AttentionCore) for child in module.children())}


def capture_names(model: nn.Module) -> dict[str, str]:
    """Core name → the layer name it is captured under (its owner's if the owner holds only that core)."""
    out = {}
    for owner, module in attention_owners(eager_module(model)).items():
        cores = [n for n, c in module.named_children() if isinstance(c, AttentionCore)]
        for n in cores:
            full = f"{owner}.{n}" if owner else n
            out[full] = owner if len(cores) == 1 else full
    return out


@dataclass
class Captures:
    """What :func:`capturing` collects: ``calls`` holds ``(layer name, captured)`` per attention call in execution
    order, ``by_layer`` the same per layer name (every requested name present, empty if it never ran)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    by_layer: dict[str, list[Any]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    def values(self) -> list[Any]:
        return [c for _, c in self.calls]


def _resolve(model: nn.Module, layers: Sequence[str] | None) -> dict[str, list[AttentionCore]]:
    """Layer name → its cores: every core under its own name when ``layers`` is None, else each requested name
    (an attention layer as :func:`capture_names` names it, or a core's own name)."""
    if layers is None:
        return {name: [m] for name, m in model.named_modules() if isinstance(m, AttentionCore)}
    modules = dict(model.named_modules())
    owners = attention_owners(model)
    cores: dict[str, list[AttentionCore]] = {}
    for name in dict.fromkeys(layers):
        module = modules.get(name)
        if isinstance(module, AttentionCore):
            cores[name] = [module]
        elif name in owners:
            cores[name] = [m for m in module.modules() if isinstance(m, AttentionCore)]
        else:
            raise ConfigError(f"no attention layer named {name!r}; capturable: "
                              f"{', '.join(dict.fromkeys(capture_names(model).values())) or 'none'}",
                              field="attention_layers")
    return cores


@contextmanager
def capturing(model: nn.Module, layers: Sequence[str] | None = None, *,
              reduce: Callable[[CapturedAttention], Any] | None = None, keep_graph: bool = False,
              eval_mode: bool = False) -> Iterator[Captures]:
    """Capture the attention probabilities of ``model``'s forwards inside the block.

    ``layers``: names of attention layers (unknown names raise :class:`ConfigError` listing the capturable ones),
    or None for every attention core under its own name. Captured layers take the explicit softmax path, the rest
    keep the fused kernel. ``reduce`` maps each :class:`CapturedAttention` as it arrives (a mean over heads, a
    statistic) so that no full map outlives its layer; ``keep_graph`` keeps the probabilities in the autograd
    graph (for gradients with respect to them); ``eval_mode`` runs the model in eval mode inside the block.

    The block holds :func:`model_lock`; on exit, also when the forward raises, the cores' sinks, graph flags and
    the model's training mode are restored as they were. Layer names are those of the eager module of a compiled
    model, whose forward runs eagerly while a capture sits on it (the compiled graph has no sinks)."""
    model = eager_module(model)
    with model_lock(model):
        cores = _resolve(model, layers)
        captures = Captures(by_layer={name: [] for name in cores})
        saved: list[tuple[AttentionCore, Any, bool]] = []
        was_training = model.training

        def sink_for(name: str) -> Callable[[CapturedAttention], None]:
            def sink(c: CapturedAttention) -> None:
                value = reduce(c) if reduce is not None else c
                captures.calls.append((name, value))
                captures.by_layer[name].append(value)
            return sink

        try:
            if eval_mode:
                model.eval()
            for name, core_list in cores.items():
                for core in core_list:
                    saved.append((core, core.sink, core.capture_graph))
                    core.sink, core.capture_graph = sink_for(name), keep_graph
            yield captures
        finally:
            for core, sink, graph in reversed(saved):
                core.sink, core.capture_graph = sink, graph
            if eval_mode:
                model.train(was_training)


@contextmanager
def gradient_sinks(model: nn.Module, on_call: Callable[[str, AttentionLayout, tuple[int, int, int, int]],
                                                       GradientBlocks]) -> Iterator[None]:
    """A :attr:`~videoattn_core.models.layers.AttentionCore.gradient_sink` on every attention core of ``model``
    (in eval mode, under :func:`model_lock`, all restored on exit): each call of a core while autograd records
    calls ``on_call(core name, layout, (G, heads, N_q, N_k))``, which returns the function that receives the
    call's ``∇A ⊙ A`` blocks in the backward pass. The cores keep the fused kernel in the forward."""
    model = eager_module(model)
    with model_lock(model):
        cores = [(name, m) for name, m in model.named_modules() if isinstance(m, AttentionCore)]
        saved = [core.gradient_sink for _, core in cores]
        was_training = model.training
        try:
            model.eval()
            for name, core in cores:
                core.gradient_sink = functools.partial(on_call, name)
            yield
        finally:
            for (_, core), sink in zip(cores, saved):
                core.gradient_sink = sink
            model.train(was_training)


@contextmanager
def activation_gradients_only(model: nn.Module) -> Iterator[None]:
    """The weights out of the autograd graph (``requires_grad`` off, restored after; under the model's lock), the
    graph started at the input instead: both maps need gradients with respect to activations only, and autograd
    then keeps only what those need — not the input of every linear layer, which only a weight's gradient uses
    (the peak resident set of timesformer_base's relevance: 2.6 → 2.1 GB in a process holding 0.8 GB before)."""
    with model_lock(model):
        trained = [p for p in model.parameters() if p.requires_grad]
        try:
            for p in trained:
                p.requires_grad_(False)
            yield
        finally:
            for p in trained:
                p.requires_grad_(True)
