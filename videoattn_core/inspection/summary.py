"""Static summaries: the model built on the meta device, one forward on a meta clip, every module recorded with
its shapes, axis meanings, parameters and analytic MACs — no weights, no arithmetic."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..attention.capture import capture_names
from ..config import ModelConfig, jsonable
from ..cost.flops import FLOPS_CONVENTION, MACS_CONVENTION, module_macs
from ..errors import ConfigError
from ..models.layers import AttentionCore
from ..registry import build_model, family_of, get_config
from .axes import AxisNamer
from .meta_shortcuts import MetaElementwise, shape_only_forwards
from .recorder import Recorder
from .records import LayerRecord, build_records

#: what ``macs`` and ``flops`` count (shown next to the numbers by the table, the JSON and the app)


#: Bounds of the ``frames`` and ``size`` arguments of :func:`summarize` (meta tensors cost nothing, but a
#: summary should describe a clip a model can plausibly take).
FRAMES_RANGE = (1, 2048)
SIZE_RANGE = (1, 8192)


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
    attention_elems: dict[str, int] = field(default_factory=dict, repr=False)
    peak_bytes: dict[tuple, int] = field(default_factory=dict, repr=False)  # forward_peak_bytes by dtype, batch

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
        at once, counted while it runs on the meta device (:func:`videoattn_core.cost.memory.forward_peak_bytes`;
        with ``explicit_attention`` the softmax path's attention matrices included). ``attention``: probability
        tensors kept for ``captured`` layer names (see :func:`attention_layers`).
        """
        from ..cost.memory import forward_peak_bytes

        attention = sum(self.attention_elems.get(n, 0) for n in captured)
        unknown = [n for n in captured if n not in self.attention_elems]
        if unknown:
            raise ConfigError(f"no attention layer named {unknown[0]!r}; capturable: "
                              f"{', '.join(self.attention_elems)}", field="attention_layers")
        dtype = {2: torch.bfloat16, 4: torch.float32, 8: torch.float64}.get(dtype_bytes, torch.float32)
        key = (dtype_bytes, batch, explicit_attention)
        if key not in self.peak_bytes:
            self.peak_bytes[key] = forward_peak_bytes(self.config, dtype=dtype, batch=batch,
                                                       explicit_attention=explicit_attention,
                                                       input_shape=self.input_shape)
        weights = self.params * dtype_bytes
        activations = self.peak_bytes[key]
        attention_bytes = int(attention * batch / self.batch) * dtype_bytes
        return {"weights": weights, "activations": activations, "attention": attention_bytes,
                "total": weights + activations + attention_bytes}

    def forward_memory(self, device: str = "cpu", dtype_bytes: int = 4) -> dict[str, Any]:
        """The memory estimate of a one-view forward on ``device`` (:func:`videoattn_core.cost.memory.forward_memory`:
        the upper bound the run plan and the app report; by default on the CPU in float32)."""
        from ..cost.memory import forward_memory

        return forward_memory(self, device, dtype_bytes)

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per record (a table for ``st.dataframe`` or the figures)."""
        return [r.to_dict() for r in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "family": self.family, "config": jsonable(self.config.to_dict()),
            "input_shape": list(self.input_shape), "input_layout": self.input_layout,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params, "macs": self.macs, "flops": self.flops, "views": self.views,
            "macs_all_views": self.macs_all_views, "flops_all_views": self.flops_all_views,
            "conventions": {"macs": MACS_CONVENTION, "flops": FLOPS_CONVENTION,
                            "views": "test clips × crops the paper averages over; *_all_views = per view × views"},
            "breakdown": self.breakdown(), "memory": self.forward_memory(),
            "layers": self.to_rows(),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, max_depth: int | None = None) -> str:
        """A readable per-layer table with totals (the command line's output); see
        :func:`~videoattn_core.inspection.table.summary_table`."""
        from .table import summary_table

        return summary_table(self, max_depth)


def default_views(config: ModelConfig) -> int:
    """The test views (temporal clips × spatial crops) the family's paper multiplies its per-view cost by (the
    family's ``paper_views``)."""
    return family_of(config).paper_views


def _check_range(name: str, value: int | None, bounds: tuple[int, int]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{name}={value!r} is not allowed: {name} must be an integer from {bounds[0]} to "
                          f"{bounds[1]}", field=name)


def _example_input(model: nn.Module, config: ModelConfig, frames: int | None, size: int | None, batch: int,
                   device: torch.device | str) -> Tensor:
    return torch.empty(config.input_shape(frames, size, batch), device=device)



def summarize(name_or_model: str | ModelConfig | nn.Module, frames: int | None = None, size: int | None = None,
              *, batch: int = 1, views: int | None = None, **overrides: Any) -> Summary:
    """Static summary of a model on a ``frames``×``size``² clip, without weights or arithmetic.

    ``name_or_model`` is a preset name, a config, or a built model (its ``config`` is used, so no weight is
    touched); ``overrides`` change config fields (``attention_type="joint_space_time"``); ``frames``/``size``
    change the input only (default: what the config is built for — a model built for 8 frames then runs on
    16, as a TimeSformer does by interpolating its time embedding). ``views`` defaults to the family's paper
    (the family's ``paper_views``). Raises :class:`ConfigError` for unknown presets, fields, values, or an input shape
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
    shape_only_forwards(model)
    x = _example_input(model, config, frames, size, batch, "meta")

    recorder = Recorder(model)
    try:
        with torch.no_grad(), MetaElementwise():
            try:
                model(x)
            except ValueError as exc:  # the model's own input checks
                raise ConfigError(f"{label} cannot take an input of shape {tuple(x.shape)} "
                                  f"({config.input_layout}): {exc}", field="frames" if frames else "size") from None
    finally:
        recorder.remove()

    calls = recorder.calls
    namer = AxisNamer(calls, batch, tuple(x.shape), config.input_layout, config.has_head)
    records = build_records(model, calls, namer)
    params = sum(p.numel() for p in model.parameters())
    macs = sum(r.macs for r in records)
    names = capture_names(model)
    attention_elems: dict[str, int] = {}
    for c in calls:
        if isinstance(c.module, AttentionCore):
            key = names.get(c.name, c.name)
            attention_elems[key] = attention_elems.get(key, 0) + c.attention_elems
    return Summary(model=label, family=config.family, config=config, input_shape=tuple(x.shape),
                   input_layout=config.input_layout, output_shape=calls[0].output_shape if calls else None,
                   layers=records, params=params, macs=macs,
                   views=views if views is not None else default_views(config), batch=batch,
                   attention_elems=attention_elems)


def cost_points(config: ModelConfig, points: Sequence[tuple[int | None, int | None]],
                categories: dict[str, str]) -> list[tuple[int, int] | None]:
    """``(MACs, attention MACs)`` of ``config`` at each ``(frames, size)`` of ``points`` — the same numbers as
    ``summarize(config, frames, size).macs`` and its attention records' sum — from one model built once.

    ``categories`` maps module names to their category (a summary's ``{r.name: r.category}``; it does not
    depend on the input's size). Only the MACs are counted (no shapes, axes or records), which is what the growth
    curves need. A point the model cannot take (or out of :data:`FRAMES_RANGE` / :data:`SIZE_RANGE`) is ``None``.
    """
    model = build_model(config, device="meta")
    shape_only_forwards(model)
    names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
    totals = {"all": 0, "attention": 0}
    attention = {m for m, n in names.items() if categories.get(n) == "attention"}

    def count(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        inputs = tuple(args) + tuple(v for v in kwargs.values() if isinstance(v, Tensor))
        macs = module_macs(module, inputs, output) or 0
        totals["all"] += macs
        if module in attention:
            totals["attention"] += macs

    handles = [m.register_forward_hook(count, with_kwargs=True) for m in names]
    out: list[tuple[int, int] | None] = []
    try:
        for frames, size in points:
            totals["all"] = totals["attention"] = 0
            try:
                _check_range("frames", frames, FRAMES_RANGE)
                _check_range("size", size, SIZE_RANGE)
                with torch.no_grad(), MetaElementwise():
                    model(torch.empty(config.input_shape(frames, size, 1), device="meta"))
            except (ConfigError, ValueError, RuntimeError):
                out.append(None)
                continue
            out.append((totals["all"], totals["attention"]))
    finally:
        for h in handles:
            h.remove()
    return out
