"""The model widgets' state: their keys and values for a config, seeded from a view's link. Apart from
``pages/_widgets.py`` (which draws the widgets) because ``pages/_state.py`` seeds them when it opens a view, and
``_widgets`` reads the view state: neither imports the other both ways."""

from __future__ import annotations

import typing
from typing import Any

import streamlit as st

from pages import _hub
from videoattn_core.config import FieldSpec
from videoattn_core.links import LinkState


def widget_key(page: str, preset: str, name: str) -> str:
    """Model widgets are per page (a key shared by two pages' widgets would not follow a page switch)."""
    return f"{page}:hp.{preset}.{name}"


def is_tuple_field(spec: FieldSpec) -> bool:
    return typing.get_origin(spec.type) is tuple


def _widget_value(spec: FieldSpec, value: Any) -> Any:
    """A config value as its widget holds it (tuples and free text as strings)."""
    if is_tuple_field(spec) or (spec.type not in (int, float, bool, str) and spec.choices is None):
        if value is None:
            return "none"
        return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
    if spec.type is float and value is not None:
        return float(value)
    return value


def seed_model_widgets(view: Any, link: LinkState, *, overwrite: bool) -> None:
    """Put the model of ``link`` into ``view.page``'s model widgets (family, preset, the Hugging Face field, every
    hyperparameter); ``overwrite`` replaces what the widgets hold (entering a page, an opened link)."""
    ss = st.session_state
    page = view.page
    family = link.config.family
    if overwrite or f"{page}:w.family" not in ss:
        ss[f"{page}:w.family"] = family
    if overwrite or f"{page}:w.preset" not in ss:
        ss[f"{page}:w.preset"] = link.preset
    _hub.seed_field(page, link.preset, overwrite=overwrite)
    for spec in link.config.field_specs():
        key = widget_key(page, link.preset, spec.name)
        if overwrite or key not in ss:
            ss[key] = _widget_value(spec, getattr(link.config, spec.name))
