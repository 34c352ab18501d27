"""Model configurations: frozen dataclasses that validate themselves on construction.

Every hyperparameter of a model family is a field declared with :func:`hparam`, which records its help text
and allowed range or choices. Those records drive three things at once: validation here (a wrong value raises
:class:`~videoattn_core.errors.ConfigError` naming the field, the value and what is allowed), the widgets of
the app, and the parsing of ``field=value`` strings from the command line and from share links
(:func:`coerce_overrides`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ConfigError

def hparam(default: Any, help: str, *, min: float | None = None, max: float | None = None,
           choices: tuple | None = None, length: int | None = None, optional: bool = False) -> Any:
    """Declare a hyperparameter field.

    ``min``/``max`` bound numbers (and every element of a tuple); ``choices`` lists the allowed values;
    ``length`` fixes the length of a tuple; ``optional`` allows ``None``.
    """
    meta = {"help": help, "min": min, "max": max, "choices": choices, "length": length, "optional": optional}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """What the app and the parsers need to know about one config field."""

    name: str
    type: Any
    default: Any
    help: str
    min: float | None
    max: float | None
    choices: tuple | None
    length: int | None
    optional: bool


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; ``tuple[int, ...]`` stays as it is."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        non_none = [a for a in args if a is not type(None)]
        return non_none[0] if len(non_none) == 1 else tp
    return tp


@dataclass(frozen=True)
class ModelConfig:
    """Base class of every family's configuration.

    Subclasses declare fields with :func:`hparam` and put cross-field rules in :meth:`validate`. Derived,
    per-block settings are computed by methods or properties, never stored as literal lists.
    """

    family: ClassVar[str] = ""
    #: axis order of the model's input tensor
    input_layout: ClassVar[str] = "B C T H W"
    #: whether the model ends in a classification head (predictions and labels make sense)
    has_head: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for spec in self.field_specs():
            check_field(spec, getattr(self, spec.name))
        self.validate()

    def validate(self) -> None:
        """Cross-field rules; raise :class:`ConfigError` naming the fields involved."""

    @classmethod
    def field_specs(cls) -> list[FieldSpec]:
        return list(_field_specs(cls))

    def input_shape(self, frames: int | None = None, size: int | None = None, batch: int = 1) -> tuple[int, ...]:
        """The input tensor shape for ``frames`` frames of ``size``×``size`` pixels (defaults: what the model
        is built for). Families whose input is not ``(B, C, T, H, W)`` with ``in_chans``, ``num_frames`` and
        ``img_size`` fields override this."""
        t = frames if frames is not None else getattr(self, "num_frames")
        s = size if size is not None else getattr(self, "img_size")
        return (batch, getattr(self, "in_chans", 3), t, s, s)

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed; unknown names raise a :class:`ConfigError` listing the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"unknown hyperparameter {show_value(unknown[0])} for the {self.family} family; "
                f"known: {', '.join(sorted(known))}", field=unknown[0])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def diff(self, other: "ModelConfig") -> dict[str, Any]:
        """Fields whose value differs from ``other`` (used for share links: only non-defaults travel)."""
        return {k: v for k, v in self.to_dict().items() if getattr(other, k) != v}


@functools.cache
def _field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """A config class's field specs, worked out once per class: every config checks its fields against them when
    it is made, and resolving the type hints is the slow part (~1 ms a class)."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        specs.append(FieldSpec(
            name=f.name, type=_base_type(hints[f.name]), default=f.default, help=meta.get("help", ""),
            min=meta.get("min"), max=meta.get("max"), choices=meta.get("choices"),
            length=meta.get("length"), optional=meta.get("optional", False)))
    return tuple(specs)


def jsonable(value: Any) -> Any:
    """A config value (or a dict or list of them) as JSON holds it: tuples become lists, at any depth."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    return value


def show_value(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut short so that a tampered link cannot flood a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _describe_allowed(spec: FieldSpec) -> str:
    if spec.choices is not None:
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(spec.type)
    if typing.get_origin(spec.type) is tuple:
        elem = typing.get_args(spec.type)[0]
        kind = f"a tuple of {'integers' if elem is int else 'numbers'}"
        if spec.length:
            kind += f" of length {spec.length}"
    kind = kind or str(spec.type)
    if spec.min is not None and spec.max is not None:
        kind += f" from {spec.min} to {spec.max}"
    elif spec.min is not None:
        kind += f" ≥ {spec.min}"
    elif spec.max is not None:
        kind += f" ≤ {spec.max}"
    if spec.optional:
        kind += " (or none)"
    return kind


def _check_number(spec: FieldSpec, value: Any, expected: type) -> bool:
    if isinstance(value, bool) and expected is not bool:
        return False
    if expected is float:
        ok = isinstance(value, (int, float)) and math.isfinite(value)
    else:
        ok = isinstance(value, expected)
    if not ok:
        return False
    if expected in (int, float):
        if spec.min is not None and value < spec.min:
            return False
        if spec.max is not None and value > spec.max:
            return False
    return True


def check_field(spec: FieldSpec, value: Any) -> None:
    bad = ConfigError(f"{spec.name}={show_value(value)} is not allowed: {spec.name} must be {_describe_allowed(spec)}",
                      field=spec.name)
    if value is None:
        if spec.optional:
            return
        raise bad
    if spec.choices is not None:
        if value not in spec.choices:
            raise bad
        return
    if typing.get_origin(spec.type) is tuple:
        elem = typing.get_args(spec.type)[0]
        if not isinstance(value, tuple) or (spec.length is not None and len(value) != spec.length):
            raise bad
        if not all(_check_number(spec, v, elem) for v in value):
            raise bad
        return
    if spec.type in (int, float, bool):
        if not _check_number(spec, value, spec.type):
            raise bad
        return
    if spec.type is str and not isinstance(value, str):
        raise bad


def _parse_scalar(text: str, tp: type) -> Any:
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(text)
    if tp is int:
        value = float(text)
        if not value.is_integer():
            raise ValueError(text)
        return int(value)
    if tp is float:
        return float(text)
    return text


def coerce_value(spec: FieldSpec, text: str) -> Any:
    """Parse the string form of one field, as typed on a command line or found in a link.

    Tuples are written ``1,2,2`` or ``[1, 2, 2]``; ``none`` gives ``None`` for optional fields.
    """
    text = text.strip()
    try:
        if spec.optional and text.lower() in ("none", "null", ""):
            return None
        if typing.get_origin(spec.type) is tuple:
            elem = typing.get_args(spec.type)[0]
            if text.startswith("["):
                items = json.loads(text)
                return tuple(_parse_scalar(str(i), elem) for i in items)
            return tuple(_parse_scalar(part, elem) for part in text.split(",") if part.strip())
        return _parse_scalar(text, spec.type)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ConfigError(f"{spec.name}={show_value(text)} is not allowed: {spec.name} must be "
                          f"{_describe_allowed(spec)}", field=spec.name) from None


def coerce_overrides(config_cls: type[ModelConfig], raw: dict[str, str]) -> dict[str, Any]:
    """Turn ``{"num_frames": "16"}`` into ``{"num_frames": 16}`` for ``config_cls``; errors name the field."""
    specs = {s.name: s for s in config_cls.field_specs()}
    out = {}
    for name, text in raw.items():
        if name not in specs:
            raise ConfigError(f"unknown hyperparameter {show_value(name)} for the {config_cls.family} family; "
                              f"known: {', '.join(sorted(specs))}", field=name)
        out[name] = coerce_value(specs[name], text)
    return out


def parse_assignments(config_cls: type[ModelConfig], items: list[str], *, flag: str = "--set") -> dict[str, Any]:
    """``["num_frames=16", "qkv_bias=false"]`` → typed overrides for ``config_cls`` (the FIELD=VALUE grammar of the
    command line); a malformed item or value raises a :class:`ConfigError` naming it."""
    raw: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{flag} expects FIELD=VALUE, got {item!r}; fields of the {config_cls.family} family: "
                              f"{', '.join(s.name for s in config_cls.field_specs())}", field=None)
        raw[name.strip()] = value
    return coerce_overrides(config_cls, raw) if raw else {}


def require_multiple(config: Any, field: str, of: str, *, heads: bool = False) -> None:
    """``config.<field>`` must be a multiple of ``config.<of>``; the message names both (``heads``: phrased for a
    head count, which must divide a width)."""
    value, divisor = getattr(config, field), getattr(config, of)
    if value % divisor:
        advice = (f"choose {of} among the divisors of {field}" if heads else f"{field} must be a multiple of {of}")
        raise ConfigError(f"{field}={value} is not divisible by {of}={divisor}; {advice}",
                          field=of if heads else field)


def require(condition: bool, message: str, field: str | None = None) -> None:
    """Raise a :class:`ConfigError` with ``message`` unless ``condition`` holds (for :meth:`validate`)."""
    if not condition:
        raise ConfigError(message, field=field)
