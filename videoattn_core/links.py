"""Share links: a view's whole state as URL query parameters, and back.

A link holds ``model=<preset>`` (or a Hugging Face model, ``model=hf:ORG/NAME[@REVISION]``), each hyperparameter
that differs from the model's own by its config field name (``attention_type=joint_space_time``,
``num_frames=16``), and page state (clip, weights, layer, head, query, frame). A local model directory never
travels in a link: opening one would have the server read its own folders on a stranger's word, so only ``hf:``
ids are opened from a link. Reading a link never fails: a parameter that is unknown, malformed, out of range or
impossible in combination with the others is dropped, the default is used instead, and
:attr:`LinkState.ignored` says which and why, in words a user can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .config import ModelConfig, check_field, coerce_value, parse_assignments, show_value
from .errors import ConfigError, VideoAttnError
from .registry import get_preset, list_models
from .weights.hub import HF_PREFIX, looks_like_ref

_BARE_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w.\-/]+)?$")
#: the help of the app's model field and the reason a link's local path is refused
HUB_FIELD_HELP = ("A model on the Hugging Face Hub, written hf:ORG/NAME, hf:ORG/NAME@REVISION (a branch, tag or "
                  "commit) or ORG/NAME: its config.json and processor config are read (no weights until a run), "
                  "and it replaces the preset below. Clear the field to pick a preset again.")

@dataclass
class LinkState:
    """What a link asks for, after validation."""

    preset: str
    config: ModelConfig
    overrides: dict[str, Any] = field(default_factory=dict)
    page: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def open_model_name(text: str, *, allow_paths: bool = False, typed: bool = False) -> str:
    """The canonical name of the model ``text`` names, opened: a preset, or a Hugging Face model written
    ``hf:ORG/NAME[@REVISION]`` (or ``ORG/NAME`` where the user ``typed`` it into the app's field); with
    ``allow_paths`` also the path of a local directory holding a Hugging Face ``config.json``.

    Opening reads ``config.json`` and the processor config (fetched into the Hugging Face cache), never the
    weights. Raises a :class:`~videoattn_core.errors.VideoAttnError` saying what is wrong: malformed id, not
    found, no network, an architecture no family builds, or a local path where only Hub ids are allowed."""
    text = str(text).strip()
    if text in list_models():
        return text
    if not text.startswith(HF_PREFIX):
        is_path = text.startswith(("/", "~", ".", "\\")) or ((allow_paths or typed)
                                                              and Path(text).expanduser().is_dir())
        if is_path and allow_paths:
            return get_preset(text).name
        if is_path or (looks_like_ref(text) and not typed):
            where = ("this server does not open local directories typed into the page (whoever runs it can allow "
                     "it with VIDEOATTN_LOCAL_MODELS=1)" if typed else
                     "only hf:ORG/NAME ids travel in links; a local directory is never opened from a link (a link "
                     "must not make the server read its own folders)")
            raise ConfigError(f"{show_value(text, 80)} is not a preset nor a Hugging Face id: {where}", field="model")
        if not _BARE_REPO.match(text):
            raise ConfigError(f"unknown model {show_value(text, 80)}: name a preset or a Hugging Face model as "
                              f"hf:ORG/NAME[@REVISION]", field="model")
        text = HF_PREFIX + text
    return get_preset(text).name


def _first(value: str | list[str]) -> str:
    return value[-1] if isinstance(value, list) else value


def parse_link(params: Mapping[str, str | list[str]], *,
               page_fields: Mapping[str, Callable[[str], Any]] | None = None,
               default_model: str = "timesformer_base", allow_paths: bool = False) -> LinkState:
    """Validate query parameters into a :class:`LinkState`.

    ``model`` is a preset or a Hugging Face id (``hf:ORG/NAME[@REVISION]``, opened with ``get_preset``: one that
    cannot be opened is ignored with the reason); a local directory only with ``allow_paths``, which the app gives
    to its own state (a config key, the session's memory), never to a link a user opened.

    ``page_fields`` maps each page-state parameter to a parser that returns its value or raises
    ``ValueError`` with a message saying what is allowed; unknown parameters are ignored with a message.
    """
    page_fields = dict(page_fields or {})
    raw = {k: _first(v) for k, v in params.items()}
    ignored: list[str] = []

    preset = raw.pop("model", default_model)
    if preset not in list_models():
        try:
            preset = open_model_name(preset, allow_paths=allow_paths)
        except (VideoAttnError, OSError) as exc:
            reason = "unknown model" if not looks_like_ref(preset) else str(exc)
            ignored.append(f"model={show_value(preset, 80)} ignored: {reason}; showing {default_model}")
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


def parse_spec(text: str, *, hub: bool = False) -> tuple[str, list[str]]:
    """A configuration written on one line, ``"mvit_v2_s;num_frames=8;depths=1,1,1,1"`` →
    ``("mvit_v2_s", ["num_frames=8", "depths=1,1,1,1"])`` (the Compare and Side-by-side pages' slots);
    ``ValueError`` for an unknown preset. ``hub=True`` also takes a Hugging Face id (``hf:ORG/NAME[@REVISION]``,
    opened; never a local path), with the reason it cannot be opened as the ``ValueError``."""
    preset, *pairs = [part.strip() for part in text.split(";") if part.strip()] or [""]
    if preset not in list_models():
        if not (hub and preset.startswith(HF_PREFIX)):
            raise ValueError(f"unknown model {preset!r}; available: {', '.join(list_models())}")
        try:
            preset = open_model_name(preset)
        except VideoAttnError as exc:
            raise ValueError(str(exc)) from None
    return preset, pairs


def spec_config(preset: str, assignments: list[str]) -> ModelConfig:
    """A preset with ``field=value`` overrides; :class:`ConfigError` names what is wrong."""
    base = get_preset(preset).config
    return base.replace(**parse_assignments(type(base), assignments, flag="override"))


def spec_text(preset: str, config: ModelConfig) -> str:
    """The one-line form :func:`parse_spec` reads."""
    params = make_link(preset, config)
    return ";".join([preset] + [f"{k}={v}" for k, v in params.items() if k != "model"])
