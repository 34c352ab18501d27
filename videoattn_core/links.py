"""Share links: a view's whole state as URL query parameters, and back.

A link holds ``model=<preset>``, each hyperparameter that differs from the preset by its config field name
(``attention_type=joint_space_time``, ``num_frames=16``), and page state (clip, weights, layer, head, query,
frame). Reading a link never fails: a parameter that is unknown, malformed, out of range or impossible in
combination with the others is dropped, the default is used instead, and :attr:`LinkState.ignored` says which
and why, in words a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .config import ModelConfig, check_field, coerce_value, show_value
from .errors import ConfigError
from .registry import get_preset, list_models


@dataclass
class LinkState:
    """What a link asks for, after validation."""

    preset: str
    config: ModelConfig
    overrides: dict[str, Any] = field(default_factory=dict)
    page: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _first(value: str | list[str]) -> str:
    return value[-1] if isinstance(value, list) else value


def parse_link(params: Mapping[str, str | list[str]], *,
               page_fields: Mapping[str, Callable[[str], Any]] | None = None,
               default_model: str = "timesformer_base") -> LinkState:
    """Validate query parameters into a :class:`LinkState`.

    ``page_fields`` maps each page-state parameter to a parser that returns its value or raises
    ``ValueError`` with a message saying what is allowed; unknown parameters are ignored with a message.
    """
    page_fields = dict(page_fields or {})
    raw = {k: _first(v) for k, v in params.items()}
    ignored: list[str] = []

    preset = raw.pop("model", default_model)
    if preset not in list_models():
        ignored.append(f"model={show_value(preset)} ignored: unknown model; showing {default_model}")
        preset = default_model
    base = get_preset(preset).config
    specs = {s.name: s for s in base.field_specs()}

    overrides: dict[str, Any] = {}
    page: dict[str, Any] = {}
    for name, text in raw.items():
        if name in page_fields:
            try:
                page[name] = page_fields[name](text)
            except (ValueError, ConfigError) as exc:
                ignored.append(f"{name}={show_value(text)} ignored: {exc}")
        elif name in specs:
            try:
                value = coerce_value(specs[name], text)
                check_field(specs[name], value)  # its type and range; combinations are checked below
                overrides[name] = value
            except ConfigError as exc:
                ignored.append(f"{name}={show_value(text)} ignored: {exc}")
        elif name != "page":
            ignored.append(f"{name}={show_value(text)} ignored: not a hyperparameter of {preset} "
                           f"nor a setting of this page")

    # fields valid alone can still be impossible together: drop the one the error names, then retry
    while True:
        try:
            config = base.replace(**overrides)
            break
        except ConfigError as exc:
            named = [k for k in overrides if f"{k}=" in str(exc)]  # a link's field the message is about
            culprit = exc.field if exc.field in overrides else (named[0] if named else next(reversed(overrides)))
            ignored.append(f"{culprit}={overrides.pop(culprit)!r} ignored: {exc}")

    overrides = {k: v for k, v in overrides.items() if getattr(base, k) != v}
    return LinkState(preset=preset, config=config, overrides=overrides, page=page, ignored=ignored)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    if value is None:
        return "none"
    return str(value)


def make_link(preset: str, config: ModelConfig | None = None, page: Mapping[str, Any] | None = None
              ) -> dict[str, str]:
    """Query parameters for a view: the preset, the hyperparameters that differ from it, and page state."""
    params = {"model": preset}
    if config is not None:
        params.update({k: _text(v) for k, v in config.diff(get_preset(preset).config).items()})
    for key, value in (page or {}).items():
        if value is not None:
            params[key] = _text(value)
    return params
