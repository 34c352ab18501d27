"""One :class:`LayerRecord` per module, built from the calls the recorder saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..attention.capture import attention_owners
from ..models.layers import AttentionCore, AttentionLayout
from .axes import AxisNamer
from .categories import categorise
from .recorder import Call, Clock


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
      FLOPs / 2; it counts matmul, conv and attention kernels, not normalization), counted on a meta-device
      replica of the model fed the clip's shape (the same forward without arithmetic; see
      :mod:`videoattn_core.inspection.measured`).
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


def build_records(model: nn.Module, calls: list[Call], namer: AxisNamer | None,
                   clock: Clock | None = None, measured: bool = False) -> list[LayerRecord]:
    modules = dict(model.named_modules())
    by_name: dict[str, list[Call]] = {}
    for c in calls:
        by_name.setdefault(c.name, []).append(c)
    own_params = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in modules.items()}
    children = {n: [c for c, _ in m.named_children()] for n, m in modules.items()}

    records: list[LayerRecord] = []
    owners = attention_owners(model)
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
    categorise(records, model, by_name)
    return records


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child
