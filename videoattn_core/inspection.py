"""The inspection engine: everything the app and the command line show about a model.

Two entry points, both working for every registered family through the same mechanism (forward hooks on
every module, the :class:`~videoattn_core.models.layers.AttentionCore` of each attention, and the per-module
MAC formulas of :mod:`videoattn_core.flops`):

- :func:`summarize` — static: the model is built on the meta device (no memory for weights, no arithmetic),
  one forward runs on a meta clip, and each module call is recorded with its shapes, their axis meaning, its
  parameters and its analytic MACs.
- :func:`inspect` — measured: one real forward of a given model on a given clip, with the same records plus
  measured wall time and measured MACs (``torch.utils.flop_counter.FlopCounterMode``), and the softmax
  probabilities of the attention layers asked for.

Counting conventions (see :mod:`videoattn_core.flops`): ``macs`` are multiply-accumulates counted as fvcore
counts them (linear, matmul/einsum, conv, normalization; softmax, activations, additions and pooling count
zero) — the number papers print as "FLOPs"; ``flops`` is 2 × ``macs``, the convention of
``FlopCounterMode``. Papers report per-view figures and multiply by the number of test views (clips × crops);
``Summary.views`` carries that multiplier.

Axis meanings (``LayerRecord.input_layout`` / ``output_layout``) are derived, not declared per family:

1. an ``AttentionCore`` call knows its :class:`AttentionLayout` (passed by the family at the call): q/k/v are
   ``{groups} heads {tokens} d`` written from the layout's einops patterns, e.g. ``(B·T) heads (1+H·W) d``,
   ``(B·H·W) heads T d``, ``(B·nW) heads (wt·wh·ww) d``;
2. a tensor with the model input's shape has the config's ``input_layout`` (``B C T H W``, FIERY ``B T C H W``);
3. convolutions and batch norms follow PyTorch's channels-first convention (``B C T H W``, ``(B·T) C H W`` when
   the batch axis holds frames, ``B C H W``, ``B C L``; ``(B·heads) d T H W`` for the per-head pooling
   convolutions of an attention);
4. any other ``(G, N, C)`` or ``(G, heads, N, d)`` tensor is matched against the group and token counts of the
   attention calls of the forward — read off their actual q and k shapes, so pooled q/kv grids, windows and
   CLS tokens count right — trying the calls made inside the module first, then the last one before it, then
   the rest; failing that, ``B (T·H·W) C`` on any grid seen; ``(B, T, H, W, C)`` tensors on a known grid are
   ``B T H W C`` (Video Swin);
5. anything left is ``B C`` for two axes (``B classes`` for a classifier's output), or empty when nothing
   fits. Letters name axes, not sizes: ``T H W`` is whichever token grid the tensor is on (it changes between
   MViT stages), ``nW`` counts windows and ``wt wh ww`` index positions inside a window.

A module can state its own ``inspection_category`` (attribute) and its own MACs (``flop_count(inputs,
output)``, see :func:`videoattn_core.flops.module_macs`); nothing else is special-cased.

For the app::

    s = vac.summarize("mvit_v2_s", frames=16, size=224, depths=(1, 2, 11, 2))
    s.params, s.macs, s.flops, s.views, s.input_shape      # totals, per view
    s.to_rows()                                            # one dict per module (LAYER_FIELDS + "layout")
    s.breakdown()                                          # {"params": {category: n}, "macs": {...}}
    s.memory_estimate(dtype_bytes=4, batch=1)              # {"weights", "activations", "attention", "total"}
    names = vac.attention_layers(model)                    # capturable layers
    r = vac.inspect(model, clip, attention_layers=names[:1])
    r.logits, r.layers, r.attention[names[0]].probs        # (groups, heads, N_q, N_k)
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .errors import ConfigError
from .flops import CONV_TRANSPOSE_TYPES, CONV_TYPES, NORM_TYPES, module_macs
from .models.layers import AttentionCore, AttentionLayout, CapturedAttention
from .registry import build_model, family_of, get_config

__all__ = ["LayerRecord", "Summary", "Inspection", "summarize", "inspect", "attention_layers",
           "CATEGORIES", "PAPER_VIEWS", "MACS_CONVENTION", "FLOPS_CONVENTION"]

CATEGORIES = ("attention", "mlp", "embedding", "norm", "head", "conv", "pooling", "other")

MACS_CONVENTION = ("multiply-accumulates, fvcore's convention (one multiply-add = 1; linear, matmul/einsum, "
                   "conv and normalization counted; softmax, activations, additions and pooling not) — the "
                   "number papers print as FLOPs")
FLOPS_CONVENTION = "2 × MACs (torch.utils.flop_counter.FlopCounterMode's convention)"

#: Test views (temporal clips × spatial crops) the papers multiply their per-view cost by, per family. A family
#: can state its own with a ``test_views`` attribute on its config or model class, which takes precedence.
PAPER_VIEWS: dict[str, int] = {
    "timesformer": 3,   # Bertasius et al. 2021, Table 1/6: 1 clip × 3 spatial crops ("0.59 TFLOPs × 3 views")
    "mvit": 5,          # Fan et al. 2021 / Li et al. 2022, Kinetics tables: 5 clips × 1 crop
    "swin3d": 12,       # Liu et al. 2022 (Video Swin), Table 1: 4 clips × 3 crops
}

#: Bounds of the ``frames`` and ``size`` arguments of :func:`summarize` (meta tensors cost nothing, but a
#: summary should describe a clip a model can plausibly take).
FRAMES_RANGE = (1, 2048)
SIZE_RANGE = (1, 8192)


# --------------------------------------------------------------------------------------------------- records

@dataclass
class LayerRecord:
    """One module of the model, aggregated over its calls in one forward.

    Records come in execution order (order of first call); the model itself is the record named ``""`` at depth
    0; modules that own parameters but never ran come last with ``calls == 0``.

    - ``name``: dotted path as in ``model.named_modules()``; ``type``: class name; ``depth``: number of dots + 1.
    - ``input_shape`` / ``output_shape``: of the first tensor argument / the first tensor output of the first call;
      ``input_shapes``: every tensor argument of that call (q, k, v for an attention core);
      ``input_layout`` / ``output_layout``: their axis meaning (see the module docstring), ``""`` if unknown.
    - ``params``: parameters the module owns directly (``recurse=False``); ``params_total``: with its children.
      Summing ``params`` over all records gives the model's parameter count.
    - ``macs``: multiply-accumulates the module does itself (children excluded), all calls, fvcore convention;
      ``macs_total``: with its children. Summing ``macs`` over all records gives the model's MACs.
    - ``category``: one of :data:`CATEGORIES` (for breakdown charts); ``attention_kind``: the attention kind of
      an attention core or of a module owning one, else ``None``; ``attention_layout``: the
      :class:`AttentionLayout` of an attention core's first call; ``attention_path``: ``"fused"`` (the
      ``scaled_dot_product_attention`` kernel) or ``"explicit"`` (softmax materialised, e.g. captured) for an
      attention core; ``is_leaf``: the module has no children.
    - measured fields (only from :func:`inspect`, else ``None``): ``time_s`` wall time including children,
      ``self_time_s`` without them; ``measured_macs`` / ``measured_macs_total`` from ``FlopCounterMode`` (its
      FLOPs / 2; it counts matmul, conv and attention kernels, not normalization).
    """

    name: str
    type: str
    depth: int
    calls: int
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    input_shapes: tuple[tuple[int, ...], ...]
    input_layout: str
    output_layout: str
    params: int
    params_total: int
    macs: int
    macs_total: int
    category: str
    attention_kind: str | None = None
    attention_layout: AttentionLayout | None = None
    attention_path: str | None = None
    is_leaf: bool = True
    time_s: float | None = None
    self_time_s: float | None = None
    measured_macs: int | None = None
    measured_macs_total: int | None = None

    @property
    def layout(self) -> str:
        """Axis meaning in one string: ``"(B·T) (1+H·W) C"``, or ``"in → out"`` when the two differ."""
        if self.input_layout == self.output_layout or not self.output_layout:
            return self.input_layout
        return f"{self.input_layout} → {self.output_layout}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape) if self.input_shape is not None else None
        out["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        out["input_shapes"] = [list(s) for s in self.input_shapes]
        out["layout"] = self.layout
        return out


@dataclass
class _Call:
    """One module call as the hooks saw it."""

    name: str
    module: nn.Module
    order: int
    parent: "_Call | None"
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


def _tensor_shapes(values: Iterable[Any]) -> list[tuple[int, ...]]:
    return [tuple(v.shape) for v in values if isinstance(v, Tensor)]


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


class _Recorder:
    """Forward hooks on every module of a model: one :class:`_Call` per module call, in execution order.

    Hooks are registered on the model's own modules (never globally, so other models and threads are not
    affected) and removed by :meth:`remove`, which callers run in a ``finally``.
    """

    def __init__(self, model: nn.Module, clock: "_Clock | None" = None, flop_counter: Any = None):
        self.model = model
        self.names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
        self.calls: list[_Call] = []
        self.stack: list[_Call] = []
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
        return sum(self.flop_counter.flop_counts["Global"].values())

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        call = _Call(self.names[module], module, len(self.calls), self.stack[-1] if self.stack else None)
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


class _Clock:
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


# ------------------------------------------------------------------------------------------- axis meanings

_AXIS_NAMES = {"b": "B", "t": "T", "h": "H", "w": "W", "nt": "nT", "nh": "nH", "nw": "nW"}


def _pattern_axes(pattern: str) -> list[str]:
    return pattern.replace("(", " ").replace(")", " ").split()


def _pattern_label(pattern: str, cls: bool = False) -> str:
    axes = [_AXIS_NAMES.get(a, a) for a in _pattern_axes(pattern)]
    body = "·".join(axes)
    if cls:
        return f"(1+{body})"
    return f"({body})" if len(axes) > 1 else body


class _AxisNamer:
    """Names the axes of the tensors of one forward (see the module docstring for the rules).

    The group and token counts of each attention call are read off its actual ``q`` and ``k`` shapes, and the
    names off its :class:`AttentionLayout` patterns, so nothing depends on how a family names its einops axes.
    """

    def __init__(self, calls: list[_Call], batch: int, input_shape: tuple[int, ...], input_layout: str,
                 has_head: bool = True):
        self.batch = batch
        self.has_head = has_head
        self.input_shape = tuple(input_shape)
        self.input_layout = input_layout
        self.core_calls = [c for c in calls if c.layout is not None and len(c.input_shapes) >= 2
                           and len(c.input_shapes[0]) == 4]
        grids: list[tuple[int, ...]] = []
        for c in self.core_calls:
            lay = c.layout
            for g in (lay.grid, lay.q_grid, lay.kv_grid, lay.padded_grid):
                if g is not None and tuple(g) not in grids:
                    grids.append(tuple(g))
        axes = input_layout.split()
        if len(axes) == len(self.input_shape) and {"T", "H", "W"} <= set(axes):
            pixel = tuple(self.input_shape[axes.index(a)] for a in ("T", "H", "W"))
            if pixel not in grids:
                grids.append(pixel)
        self.grids = grids
        self.frames = {g[0] for g in grids}
        self.planes = {(g[1], g[2]) for g in grids}

    def _context(self, call: _Call) -> list[_Call]:
        """Attention calls to try first: those inside ``call``, then the last one before it, then the rest."""
        inside = [c for c in self.core_calls if call.order <= c.order < call.end_order]
        before = [c for c in self.core_calls if c.order < call.order][-1:]
        return list({id(c): c for c in inside + before + self.core_calls}.values())

    def _core_siblings(self, call: _Call) -> list[_Call]:
        """Attention calls made by the module that made ``call`` (its parent's other children)."""
        parent = call.parent
        if parent is None:
            return []
        return [c for c in self.core_calls if c.parent is parent]

    @staticmethod
    def _core_candidates(c: _Call) -> list[tuple[str, str, int, int]]:
        """(groups label, tokens label, groups, tokens) one attention call explains, queries and keys."""
        lay = c.layout
        q, k = c.input_shapes[0], c.input_shapes[1]
        glabel = _pattern_label(lay.groups)
        with_cls, without = _pattern_label(lay.tokens, lay.cls), _pattern_label(lay.tokens)
        out = []
        for n in dict.fromkeys((q[2], k[2])):
            out.append((glabel, with_cls, q[0], n))
            if lay.cls:
                out.append((glabel, without, q[0], n - 1))
        return out

    def name(self, shape: tuple[int, ...] | None, call: _Call, *, is_input: bool) -> str:
        if shape is None:
            return ""
        shape = tuple(shape)
        module = call.module
        if isinstance(module, AttentionCore) and call.layout is not None and len(shape) == 4:
            lay = call.layout
            return f"{_pattern_label(lay.groups)} heads {_pattern_label(lay.tokens, lay.cls)} d"
        if shape == self.input_shape:
            return self.input_layout
        if call.parent is None and not is_input and len(shape) == 2 and self.has_head:
            return "B classes"
        b = self.batch
        context = self._context(call) if len(shape) in (3, 4, 5) else []
        if isinstance(module, (*CONV_TYPES, *CONV_TRANSPOSE_TYPES, nn.modules.batchnorm._BatchNorm)):
            dims = len(shape) - 2
            lead = "B"
            # pooling convolutions of pooled attention run per head: (B·heads, head_dim, T, H, W)
            if any(shape[0] == b * c.input_shapes[0][1] and shape[1] == c.input_shapes[0][3] for c in context[:2]) \
                    and any(isinstance(p.module, AttentionCore) for p in self._core_siblings(call)):
                lead = "(B·heads)"
            elif shape[0] != b and dims == 2 and shape[0] % b == 0:
                lead = "(B·T)"
            channels = "d" if lead == "(B·heads)" else "C"
            return {3: f"{lead} {channels} T H W", 2: f"{lead} {channels} H W", 1: f"{lead} {channels} L"}.get(dims, "")
        if len(shape) == 3:
            for c in context:
                for glabel, nlabel, g, n in self._core_candidates(c):
                    if shape[0] == g and shape[1] == n:
                        return f"{glabel} {nlabel} C"
            for grid in self.grids:
                n = math.prod(grid)
                if shape[0] == b and shape[1] in (n, n + 1):
                    return "B (1+T·H·W) C" if shape[1] == n + 1 else "B (T·H·W) C"
            return ""
        if len(shape) == 4:
            for c in context:
                q = c.input_shapes[0]
                for glabel, nlabel, g, n in self._core_candidates(c):
                    if shape[0] == g and shape[1] == q[1] and shape[2] == n:
                        last = "d" if shape[3] == q[3] else next(
                            (lab for _, lab, _, m in self._core_candidates(c) if m == shape[3]), "d")
                        return f"{glabel} heads {nlabel} {last}"
            if shape[0] % b == 0 and (shape[2], shape[3]) in self.planes:
                return "(B·T) C H W" if shape[0] != b else "B C H W"
            return ""
        if len(shape) == 5 and shape[0] == b:
            if shape[2:] in self.grids:
                return "B C T H W"
            if shape[1:4] in self.grids:
                return "B T H W C"
            if (shape[3], shape[4]) in self.planes:
                return self.input_layout if self.input_layout.split()[1] == "T" else "B C T H W"
            return ""
        if len(shape) == 2 and shape[0] == b:
            return "B C"
        return ""


# --------------------------------------------------------------------------------------------- categories

def _owners(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that have an :class:`AttentionCore` as a direct child: the capturable attention layers."""
    out = {}
    for name, module in model.named_modules():
        if any(isinstance(child, AttentionCore) for child in module.children()):
            out[name] = module
    return out


def _categorise(records: list[LayerRecord], model: nn.Module, calls_by_name: dict[str, list[_Call]]) -> None:
    """Fill ``category``: a module's own ``inspection_category`` if it states one, else by what it is and where
    it sits — inside an attention layer, an MLP (``mlp``/``ffn`` in its path), a normalization, an embedding
    (``embed`` in its path, or a convolution before the first attention), the head (``head``/``classifier`` in
    its path, or a linear layer after the last attention), pooling, convolution, other."""
    modules = dict(model.named_modules())
    owner_names = set(_owners(model))
    core_orders = [c.order for calls in calls_by_name.values() for c in calls if isinstance(c.module, AttentionCore)]
    first_core = min(core_orders) if core_orders else None
    last_core = max(core_orders) if core_orders else None
    pooling = (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd,
               nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
    for rec in records:
        module = modules.get(rec.name)
        declared = getattr(module, "inspection_category", None)
        if isinstance(declared, str):
            rec.category = declared
            continue
        parts = rec.name.split(".") if rec.name else []
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        calls = calls_by_name.get(rec.name, [])
        order = calls[0].order if calls else None
        if isinstance(module, AttentionCore) or prefixes & owner_names:
            rec.category = "attention"
        elif any(p.startswith(("mlp", "ffn", "feed_forward")) for p in parts):
            rec.category = "mlp"
        elif isinstance(module, (*NORM_TYPES, nn.modules.batchnorm._BatchNorm)):
            rec.category = "norm"
        elif any("embed" in p or p in ("stem", "conv_proj") for p in parts):
            rec.category = "embedding"
        elif any(p.startswith("head") or p in ("classifier", "cls_head", "fc_cls") for p in parts):
            rec.category = "head"
        elif isinstance(module, pooling):
            rec.category = "pooling"
        elif isinstance(module, (*CONV_TYPES, *CONV_TRANSPOSE_TYPES)):
            before = first_core is not None and order is not None and order < first_core
            rec.category = "embedding" if before else "conv"
        elif isinstance(module, nn.Linear) and last_core is not None and order is not None and order > last_core:
            rec.category = "head"
        elif rec.name == "" and any(k in n for n, _ in module.named_parameters(recurse=False)
                                    for k in ("embed", "token", "pos")):
            rec.category = "embedding"
        else:
            rec.category = "other"


# ------------------------------------------------------------------------------------------------ building

def _build_records(model: nn.Module, calls: list[_Call], namer: _AxisNamer | None,
                   clock: _Clock | None = None, measured: bool = False) -> list[LayerRecord]:
    modules = dict(model.named_modules())
    by_name: dict[str, list[_Call]] = {}
    for c in calls:
        by_name.setdefault(c.name, []).append(c)
    own_params = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in modules.items()}
    children = {n: [c for c, _ in m.named_children()] for n, m in modules.items()}

    records: list[LayerRecord] = []
    owners = _owners(model)
    for name, cs in by_name.items():
        first = cs[0]
        module = first.module
        kind = None
        if isinstance(module, AttentionCore):
            kind = module.kind
        elif name in owners:
            kinds = {c.kind for c in owners[name].children() if isinstance(c, AttentionCore)}
            kind = kinds.pop() if len(kinds) == 1 else None
        rec = LayerRecord(
            name=name, type=type(module).__name__, depth=name.count(".") + 1 if name else 0, calls=len(cs),
            input_shape=first.input_shapes[0] if first.input_shapes else None, output_shape=first.output_shape,
            input_shapes=first.input_shapes,
            input_layout=namer.name(first.input_shapes[0] if first.input_shapes else None, first, is_input=True)
            if namer else "",
            output_layout=namer.name(first.output_shape, first, is_input=False) if namer else "",
            params=own_params.get(name, 0), params_total=0, macs=sum(c.macs for c in cs), macs_total=0,
            category="other", attention_kind=kind,
            attention_layout=first.layout if isinstance(module, AttentionCore) else None,
            attention_path=("fused" if first.fused else "explicit") if isinstance(module, AttentionCore) else None)
        if clock is not None:
            total = sum(clock.elapsed(c.t_start, c.t_end) for c in cs)
            rec.time_s = total
        if measured:
            rec.measured_macs_total = sum(c.measured_total for c in cs) // 2
            rec.measured_macs = sum(c.measured_total - c.children_measured for c in cs) // 2
        records.append(rec)
    # modules that never ran themselves: containers whose children ran (ModuleList, ModuleDict) go right before
    # their first child; modules owning parameters that never ran still hold weights and go last
    first_order = {name: cs[0].order for name, cs in by_name.items()}
    position = {r.name: (first_order[r.name], 0) for r in records}
    for name, module in modules.items():
        if name in by_name:
            continue
        below = [o for n, o in first_order.items() if n.startswith(name + ".") or (not name and n)]
        if not below and not any(True for _ in module.parameters()):  # holds no weights, even below it
            continue
        records.append(LayerRecord(
            name=name, type=type(module).__name__, depth=name.count(".") + 1 if name else 0, calls=0,
            input_shape=None, output_shape=None, input_shapes=(), input_layout="", output_layout="",
            params=own_params[name], params_total=0, macs=0, macs_total=0, category="other"))
        position[name] = (min(below), -1) if below else (len(calls), 0)
    records.sort(key=lambda r: position[r.name])

    # subtree totals: a module's descendants are the names below it
    by_rec = {r.name: r for r in records}
    for rec in records:
        rec.is_leaf = not children.get(rec.name)
    for name in sorted(by_rec, key=lambda n: -n.count(".") if n else 1):
        rec = by_rec[name]
        rec.params_total = rec.params + sum(by_rec[_join(name, c)].params_total for c in children.get(name, [])
                                            if _join(name, c) in by_rec)
        rec.macs_total = rec.macs + sum(by_rec[_join(name, c)].macs_total for c in children.get(name, [])
                                        if _join(name, c) in by_rec)
    if clock is not None or measured:
        # containers that never ran themselves (ModuleList) add up what their children measured
        for name in sorted(by_rec, key=lambda n: -n.count(".") if n else 1):
            rec = by_rec[name]
            if rec.calls:
                continue
            kids = [by_rec[_join(name, c)] for c in children.get(name, []) if _join(name, c) in by_rec]
            if clock is not None:
                rec.time_s = sum(k.time_s or 0.0 for k in kids)
            if measured:
                rec.measured_macs = 0
                rec.measured_macs_total = sum(k.measured_macs_total or 0 for k in kids)
    if clock is not None:
        for rec in records:
            if rec.time_s is not None:
                child_time = sum(by_rec[_join(rec.name, c)].time_s or 0.0 for c in children.get(rec.name, [])
                                 if _join(rec.name, c) in by_rec)
                rec.self_time_s = max(0.0, rec.time_s - child_time)
    _categorise(records, model, by_name)
    return records


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


# ------------------------------------------------------------------------------------------------- summary

@dataclass
class Summary:
    """What :func:`summarize` returns: per-module records and the model's totals for one input shape.

    ``params``: parameters of the model (unique tensors); ``macs``: multiply-accumulates of one forward on
    ``input_shape`` (fvcore convention, per view); ``flops`` = 2 × ``macs``; ``views``: the test views the paper
    of the family multiplies by (``macs_all_views`` = ``macs`` × ``views``). ``batch`` is the batch of
    ``input_shape`` (figures are per clip when it is 1).
    """

    model: str
    family: str
    config: ModelConfig
    input_shape: tuple[int, ...]
    input_layout: str
    output_shape: tuple[int, ...] | None
    layers: list[LayerRecord]
    params: int
    macs: int
    views: int
    batch: int
    _attention_elems: dict[str, int] = field(default_factory=dict, repr=False)
    _peak_bytes: dict[tuple, int] = field(default_factory=dict, repr=False)  # forward_peak_bytes by dtype, batch

    @property
    def flops(self) -> int:
        """2 × :attr:`macs` (FlopCounterMode's convention)."""
        return 2 * self.macs

    @property
    def macs_all_views(self) -> int:
        return self.macs * self.views

    @property
    def flops_all_views(self) -> int:
        return self.flops * self.views

    @property
    def frames(self) -> int | None:
        axes = self.input_layout.split()
        return self.input_shape[axes.index("T")] if "T" in axes else None

    def leaves(self) -> list[LayerRecord]:
        """Records of modules without children (and the model's own parameters), the rows charts sum."""
        return [r for r in self.layers if r.is_leaf or r.params]

    def breakdown(self) -> dict[str, dict[str, int]]:
        """``{"params": {category: n}, "macs": {category: n}}`` summed over the records' own counts."""
        out: dict[str, dict[str, int]] = {"params": {}, "macs": {}}
        for r in self.layers:
            for key, value in (("params", r.params), ("macs", r.macs)):
                if value:
                    out[key][r.category] = out[key].get(r.category, 0) + value
        return out

    def memory_estimate(self, dtype_bytes: int = 4, batch: int = 1, captured: Sequence[str] = (),
                        explicit_attention: bool = False) -> dict[str, int]:
        """Bytes an inference forward needs, for refusing configurations that cannot fit.

        ``weights``: parameters × ``dtype_bytes``. ``activations``: the peak bytes of the tensors the forward holds
        at once, counted while it runs on the meta device (:func:`videoattn_core.analysis.forward_peak_bytes`;
        with ``explicit_attention`` the softmax path's attention matrices included). ``attention``: probability
        tensors kept for ``captured`` layer names (see :func:`attention_layers`).
        """
        from .analysis import forward_peak_bytes

        attention = sum(self._attention_elems.get(n, 0) for n in captured)
        unknown = [n for n in captured if n not in self._attention_elems]
        if unknown:
            raise ConfigError(f"no attention layer named {unknown[0]!r}; capturable: "
                              f"{', '.join(self._attention_elems)}", field="attention_layers")
        dtype = {2: torch.bfloat16, 4: torch.float32, 8: torch.float64}.get(dtype_bytes, torch.float32)
        key = (dtype_bytes, batch, explicit_attention)
        if key not in self._peak_bytes:
            self._peak_bytes[key] = forward_peak_bytes(self.config, dtype=dtype, batch=batch,
                                                       explicit_attention=explicit_attention,
                                                       input_shape=self.input_shape)
        weights = self.params * dtype_bytes
        activations = self._peak_bytes[key]
        attention_bytes = int(attention * batch / self.batch) * dtype_bytes
        return {"weights": weights, "activations": activations, "attention": attention_bytes,
                "total": weights + activations + attention_bytes}

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per record (a table for ``st.dataframe`` or the figures)."""
        return [r.to_dict() for r in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "family": self.family, "config": _jsonable(self.config.to_dict()),
            "input_shape": list(self.input_shape), "input_layout": self.input_layout,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params, "macs": self.macs, "flops": self.flops, "views": self.views,
            "macs_all_views": self.macs_all_views, "flops_all_views": self.flops_all_views,
            "conventions": {"macs": MACS_CONVENTION, "flops": FLOPS_CONVENTION,
                            "views": "test clips × crops the paper averages over; *_all_views = per view × views"},
            "breakdown": self.breakdown(), "memory_fp32_bytes": self.memory_estimate(),
            "layers": self.to_rows(),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, max_depth: int | None = None) -> str:
        """A readable per-layer table with totals (the command line's output). Rows show subtree totals so that
        containers read as the sum of what they hold; ``max_depth`` hides deeper rows."""
        rows = [("module", "type", "input", "output", "axes", "params", "MACs")]
        for r in self.layers:
            if max_depth is not None and r.depth > max_depth:
                continue
            label = ("  " * r.depth + (r.name.rsplit(".", 1)[-1] if r.name else f"({self.model})"))
            rows.append((label, r.type, _shape_str(r.input_shape), _shape_str(r.output_shape), r.layout,
                         f"{r.params_total:,}", _human(r.macs_total)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i < 5 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines += [
            "",
            f"model         {self.model} ({self.family})",
            f"input         {tuple(self.input_shape)} ({self.input_layout})",
            f"params        {self.params:,}",
            f"MACs          {self.macs:,} ({self.macs / 1e9:.2f} G) per view — {MACS_CONVENTION}",
            f"FLOPs         {self.flops:,} ({self.flops / 1e9:.2f} G) per view — {FLOPS_CONVENTION}",
            f"views         {self.views}: {self.macs_all_views / 1e9:.2f} GMACs, "
            f"{self.flops_all_views / 1e12:.3f} TFLOPs over all views",
        ]
        mem = self.memory_estimate()
        lines.append(f"memory (fp32) {mem['weights'] / 2**20:.1f} MiB weights + "
                     f"{mem['activations'] / 2**20:.1f} MiB peak activations (estimate)")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _shape_str(shape: tuple[int, ...] | None) -> str:
    return "" if shape is None else "×".join(str(s) for s in shape)


def _human(n: float) -> str:
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def _default_views(config: ModelConfig) -> int:
    for owner in (config, family_of(config).model_cls):
        views = getattr(owner, "test_views", None)
        if isinstance(views, int) and views >= 1:
            return views
    return PAPER_VIEWS.get(config.family, 1)


def _check_range(name: str, value: int | None, bounds: tuple[int, int]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{name}={value!r} is not allowed: {name} must be an integer from {bounds[0]} to "
                          f"{bounds[1]}", field=name)


def _example_input(model: nn.Module, config: ModelConfig, frames: int | None, size: int | None, batch: int,
                   device: torch.device | str) -> Tensor:
    return torch.empty(config.input_shape(frames, size, batch), device=device)


_SAME_SHAPE_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Dropout,
                     nn.Identity, nn.GELU, nn.ReLU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softmax)


def _shape_only_forwards(model: nn.Module) -> None:
    """Give the standard leaves of a freshly built meta model forwards that only produce the output shape.

    PyTorch computes meta outputs of layer norm, linear and attention through Python decompositions (a few
    milliseconds each); a summary needs only the shape, which these layers determine from the input's. Only
    exact standard types are replaced (a subclass or a module with its own ``flop_count`` keeps its forward),
    the input is still checked as the real layer checks it, and the model is private to :func:`summarize`.
    """
    for module in model.modules():
        kind = type(module)
        if kind is nn.Linear:
            module.forward = _linear_shape.__get__(module)
        elif kind is AttentionCore:
            module.forward = _attention_shape
        elif kind in _SAME_SHAPE_TYPES:
            if kind is nn.LayerNorm:
                module.forward = _layer_norm_shape.__get__(module)
            else:
                module.forward = _same_shape
        elif kind.__name__ == "DropPath" and kind.__module__.endswith("models.layers"):
            module.forward = _same_shape


def _same_shape(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return x


def _linear_shape(self: nn.Linear, x: Tensor) -> Tensor:
    if x.shape[-1] != self.in_features:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({tuple(x.shape)} and "
                           f"{self.in_features}x{self.out_features})")
    return x.new_empty((*x.shape[:-1], self.out_features))


def _layer_norm_shape(self: nn.LayerNorm, x: Tensor) -> Tensor:
    n = len(self.normalized_shape)
    if tuple(x.shape[x.ndim - n:]) != tuple(self.normalized_shape):
        raise RuntimeError(f"layer norm over {tuple(self.normalized_shape)} got input {tuple(x.shape)}")
    return x


def _attention_shape(q: Tensor, k: Tensor, v: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise RuntimeError(f"attention q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit")
    return q.new_empty((*torch.broadcast_shapes(q.shape[:-1], k.shape[:-2] + q.shape[-2:-1]), v.shape[-1]))


def summarize(name_or_model: str | ModelConfig | nn.Module, frames: int | None = None, size: int | None = None,
              *, batch: int = 1, views: int | None = None, **overrides: Any) -> Summary:
    """Static summary of a model on a ``frames``×``size``² clip, without weights or arithmetic.

    ``name_or_model`` is a preset name, a config, or a built model (its ``config`` is used, so no weight is
    touched); ``overrides`` change config fields (``attention_type="joint_space_time"``); ``frames``/``size``
    change the input only (default: what the config is built for — a model built for 8 frames then runs on
    16, as a TimeSformer does by interpolating its time embedding). ``views`` defaults to the family's paper
    (:data:`PAPER_VIEWS`). Raises :class:`ConfigError` for unknown presets, fields, values, or an input shape
    the model cannot take (message from the model).

    >>> s = summarize("timesformer_base")
    >>> s.params, round(s.macs / 1e9, 2)
    (121566352, 196.05)
    """
    _check_range("frames", frames, FRAMES_RANGE)
    _check_range("size", size, SIZE_RANGE)
    _check_range("batch", batch, (1, 1024))
    if views is not None:
        _check_range("views", views, (1, 1000))
    if isinstance(name_or_model, nn.Module):
        config = getattr(name_or_model, "config", None)
        if not isinstance(config, ModelConfig):
            raise TypeError("summarize needs a preset name, a ModelConfig or a model with a .config ModelConfig")
        config = get_config(config, **overrides)
        label = config.family
    else:
        config = get_config(name_or_model, **overrides)
        label = name_or_model if isinstance(name_or_model, str) else config.family
    model = build_model(config, device="meta")
    _shape_only_forwards(model)
    x = _example_input(model, config, frames, size, batch, "meta")

    recorder = _Recorder(model)
    try:
        with torch.no_grad():
            try:
                model(x)
            except ValueError as exc:  # the model's own input checks
                raise ConfigError(f"{label} cannot take an input of shape {tuple(x.shape)} "
                                  f"({config.input_layout}): {exc}", field="frames" if frames else "size") from None
    finally:
        recorder.remove()

    calls = recorder.calls
    namer = _AxisNamer(calls, batch, tuple(x.shape), config.input_layout, config.has_head)
    records = _build_records(model, calls, namer)
    params = sum(p.numel() for p in model.parameters())
    macs = sum(r.macs for r in records)
    capture_names = _capture_names(model)
    attention_elems: dict[str, int] = {}
    for c in calls:
        if isinstance(c.module, AttentionCore):
            key = capture_names.get(c.name, c.name)
            attention_elems[key] = attention_elems.get(key, 0) + c.attention_elems
    return Summary(model=label, family=config.family, config=config, input_shape=tuple(x.shape),
                   input_layout=config.input_layout, output_shape=calls[0].output_shape if calls else None,
                   layers=records, params=params, macs=macs,
                   views=views if views is not None else _default_views(config), batch=batch,
                   _attention_elems=attention_elems)


# ------------------------------------------------------------------------------------------------ inspect

def attention_layers(model: nn.Module) -> list[str]:
    """Names (as in ``model.named_modules()``) of the attention layers :func:`inspect` can capture, in module
    order: each module with one :class:`AttentionCore` as a direct child (``blocks.5.attn``,
    ``blocks.5.temporal_attn``), or the cores themselves where a module holds several
    (``layers.0.blocks.1.attn.spatial_core``, ``...attn.temporal_core``)."""
    return list(dict.fromkeys(_capture_names(model).values()))


def _capture_names(model: nn.Module) -> dict[str, str]:
    """Core name → the name it is captured under (its owner's if the owner holds only that core)."""
    out = {}
    for owner, module in _owners(model).items():
        cores = [n for n, c in module.named_children() if isinstance(c, AttentionCore)]
        for n in cores:
            out[_join(owner, n)] = owner if len(cores) == 1 else _join(owner, n)
    return out


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
    from .flops import attention_macs

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
    Unknown layer names raise :class:`ConfigError` listing the capturable ones. Inspections of one model are
    serialised (a per-model lock); running the same model from other code during an inspection is not
    supported (its calls would be recorded too).
    """
    with _model_lock(model):
        return _inspect(model, x, attention_layers, measure_macs)


_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _model_lock(model: nn.Module) -> threading.Lock:
    """One inspection of a model at a time: hooks and sinks live on the model, which the app shares between
    sessions (``st.cache_resource``)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def _inspect(model: nn.Module, x: Tensor, attention_layers: Sequence[str], measure_macs: bool) -> Inspection:
    names = list(dict.fromkeys(attention_layers))
    modules = dict(model.named_modules())
    owners = _owners(model)
    cores: dict[str, list[AttentionCore]] = {}
    for name in names:
        module = modules.get(name)
        if isinstance(module, AttentionCore):
            cores[name] = [module]
        elif name in owners:
            cores[name] = [m for m in module.modules() if isinstance(m, AttentionCore)]
        else:
            raise ConfigError(f"no attention layer named {name!r}; capturable: "
                              f"{', '.join(dict.fromkeys(_capture_names(model).values())) or 'none'}",
                              field="attention_layers")

    captured: dict[str, list[CapturedAttention]] = {n: [] for n in names}
    saved_sinks: list[tuple[AttentionCore, Any]] = []
    device = x.device if isinstance(x, Tensor) else torch.device("cpu")
    clock = _Clock(device)
    counter = _flop_counter() if measure_macs else None
    recorder = None
    try:
        for name, core_list in cores.items():
            for core in core_list:
                saved_sinks.append((core, core.sink))
                core.sink = captured[name].append
        recorder = _Recorder(model, clock=clock, flop_counter=counter)
        with torch.no_grad():
            if counter is not None:
                with counter:
                    start = time.perf_counter()
                    logits = model(x)
            else:
                start = time.perf_counter()
                logits = model(x)
            clock.finish()
            elapsed = time.perf_counter() - start
    finally:
        if recorder is not None:
            recorder.remove()
        for core, sink in reversed(saved_sinks):
            core.sink = sink

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
        logits=logits, layers=records, attention={n: c[0] for n, c in captured.items() if c},
        attention_calls=captured, input_shape=tuple(x.shape) if isinstance(x, Tensor) else (),
        time_s=elapsed, macs=sum(r.macs for r in records), measured_macs=measured_total)


#: the fields of a :class:`LayerRecord`, in order (the columns of ``to_rows()``, plus ``layout``)
LAYER_FIELDS = tuple(f.name for f in fields(LayerRecord))


# ------------------------------------------------------------------------------------------- command line

def add_summary_arguments(parser: Any) -> None:
    """Arguments of ``python -m videoattn_core summary``."""
    parser.add_argument("model", metavar="MODEL", help="preset name (see the models command)")
    parser.add_argument("--frames", type=int, default=None, help="input frames (default: the preset's)")
    parser.add_argument("--size", type=int, default=None, help="input height and width (default: the preset's)")
    parser.add_argument("--batch", type=int, default=1, help="input batch (default 1: figures per clip)")
    parser.add_argument("--set", dest="overrides", metavar="FIELD=VALUE", nargs="+", action="extend", default=[],
                        help="override a config field, e.g. --set attention_type=joint_space_time depth=8")
    parser.add_argument("--depth", type=int, default=None, help="show modules down to this depth only")
    parser.add_argument("--json", action="store_true", help="print JSON (params, macs, flops, input_shape, "
                                                            "layers, ...) instead of the table")


def cmd_summary(args: Any) -> int:
    """``summary``: the per-layer table with totals, or JSON."""
    from .config import parse_assignments
    from .registry import get_preset

    overrides = parse_assignments(type(get_preset(args.model).config), args.overrides)
    if args.depth is not None and args.depth < 0:
        raise ConfigError(f"--depth={args.depth} is not allowed: --depth must be an integer ≥ 0", field="depth")
    summary = summarize(args.model, args.frames, args.size, batch=args.batch, **overrides)
    print(summary.to_json(indent=1) if args.json else summary.table(args.depth))
    return 0
