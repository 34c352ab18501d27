"""What every page shares: the view state behind share links, the model picker generated from the config
dataclasses, and the caches. No model maths here: numbers come from ``videoattn_core``.

View state. A page's whole state is a dict of query parameters (``model``, the non-default hyperparameters,
page settings). It is read once from the URL when the user opens a link (a query string the app did not
write itself), validated by :func:`videoattn_core.links.parse_link`, and pushed into the widgets; after that
the widgets are the truth and every run writes the URL back with :func:`videoattn_core.links.make_link`. The
model part is remembered in the session, so switching pages keeps the model.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import streamlit as st
import torch

import videoattn_core as vac
from videoattn_core import analysis, attention_maps, figures, inspection, preprocessing, runtime, video
from videoattn_core import weights as weights_catalog
from videoattn_core.config import FieldSpec, coerce_value
from videoattn_core.links import LinkState, make_link, parse_link
from videoattn_core.models.layers import AttentionCore

#: ``(("model", "timesformer_base"), ("num_frames", "16"))``: a config as hashable, canonical link text
ConfigKey = tuple[tuple[str, str], ...]

_WRITTEN = "_query_written"      # the query string this session last wrote
_MODEL = "_model_params"         # model part of the view state, shared by the pages
_IGNORED = "_ignored_messages"   # what the last opened link could not use, and why
_MAX_SLIDER_SPAN = 512           # integer fields with a smaller range get a slider, others a number box


# ------------------------------------------------------------------------------------------------ view state

@dataclass
class View:
    """The validated state a page starts from."""

    link: LinkState
    opened: bool  # True when this run reads a link the user opened (not one the app wrote)
    page: str
    #: True on the first run on this page since another page (or an opened link): the widgets take their values
    #: from the view state, then keep the user's changes
    entered: bool = False
    notes: list[str] = field(default_factory=list)


def _query_dict() -> dict[str, str]:
    return {key: st.query_params.get(key) for key in st.query_params.keys()}



def router_pages() -> list:
    """The app's pages, in the order of its navigation (used by app.py and by :func:`ensure_router`)."""
    return [
        st.Page("pages/model.py", title="Model", icon=":material/view_in_ar:", url_path="model", default=True),
        st.Page("pages/run.py", title="Run", icon=":material/play_arrow:", url_path="run"),
        st.Page("pages/attention.py", title="Attention", icon=":material/visibility:", url_path="attention"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
        st.Page("pages/home.py", title="Presets", icon=":material/list:", url_path="presets"),
    ]


def ensure_router() -> None:
    """Make sure a session's first run went through the router in ``app.py``.

    Because the app keeps its pages in ``pages/``, Streamlit starts every server in its legacy
    pages-directory mode and, if the server's first visitor opens a page's own URL (a share link such as
    ``/attention?...``), runs that page file alone with the files of ``pages/`` as navigation, until ``app.py``
    has called ``st.navigation`` once. Leave that mode and run again through the router: once per session, on
    its first run, when nothing the visitor did can be lost."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and not st.session_state.get("_router_checked"):
        st.session_state["_router_checked"] = True
        PagesManager.uses_pages_directory = False
        st.rerun()


def open_view(page: str, page_fields: Mapping[str, Callable[[str], Any]] | None = None, *,
              uses_model: bool = True) -> View:
    """Resolve this run's state: from an opened link, else from what this session remembers.

    ``uses_model=False`` (Compare): the page shows no single model, so a link to it leaves the session's model
    alone."""
    ensure_router()
    ss = st.session_state
    query = _query_dict()
    opened = bool(query) and query != ss.get(_WRITTEN)
    if opened:
        params = query
    else:
        params = {**ss.get(_MODEL, {}), **ss.get(f"_page_params:{page}", {})}
    link = parse_link(params, page_fields=page_fields or {})
    entered = opened or ss.get("_last_page") != page
    ss["_last_page"] = page
    view = View(link=link, opened=opened, page=page, entered=entered)
    if opened:
        ss[_IGNORED] = list(link.ignored)
        ss[_WRITTEN] = query
        ss[f"_page_params:{page}"] = {k: v for k, v in query.items() if k in (page_fields or {})}
        if uses_model:
            ss[_MODEL] = make_link(link.preset, link.config)
    if uses_model:
        _seed_model_widgets(view, link, overwrite=entered)
    return view


def show_ignored() -> None:
    """Say which parameters of the opened link were ignored and why (until another link is opened)."""
    messages = st.session_state.get(_IGNORED) or []
    if messages:
        st.warning("Some settings in the link were ignored and their defaults used instead:\n\n"
                   + "\n".join(f"- {m}" for m in messages))


def write_view(view: View, preset: str | None, config: vac.ModelConfig | None,
               page_state: Mapping[str, Any]) -> str:
    """Make the URL (and the session's memory) say what the page now shows; return the query string.

    ``preset=None``: the page shows no single model (Compare), so the link carries page state only."""
    ss = st.session_state
    page_params = {k: v for k, v in make_link("timesformer_base", None, page_state).items() if k != "model"}
    ss[f"_page_params:{view.page}"] = page_params
    if preset is None:
        params = page_params
    else:
        model_params = make_link(preset, config) if config is not None else ss.get(_MODEL, {"model": preset})
        ss[_MODEL] = model_params
        params = {**model_params, **page_params}
    if _query_dict() != params:
        st.query_params.from_dict(params)
    ss[_WRITTEN] = params
    return urlencode(params)


def share_box(page_path: str, query: str) -> None:
    """The link to this view, ready to copy."""
    base = (st.context.url or "").rstrip("/")
    if base.endswith("/" + page_path):
        base = base[: -len(page_path) - 1]
    url = f"{base}/{page_path}?{query}" if page_path else f"{base}/?{query}"
    st.caption("Share this view (the link reproduces it):")
    st.code(url, language=None)


# ------------------------------------------------------------------------------------------------ model picker

def _family_of(preset: str) -> str:
    return vac.get_preset(preset).config.family


def _widget_key(page: str, preset: str, name: str) -> str:
    """Model widgets are per page (a key shared by two pages' widgets would not follow a page switch)."""
    return f"{page}:hp.{preset}.{name}"


def _is_tuple(spec: FieldSpec) -> bool:
    return typing.get_origin(spec.type) is tuple


def _widget_value(spec: FieldSpec, value: Any) -> Any:
    """A config value as its widget holds it (tuples and free text as strings)."""
    if _is_tuple(spec) or (spec.type not in (int, float, bool, str) and spec.choices is None):
        if value is None:
            return "none"
        return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
    if spec.type is float and value is not None:
        return float(value)
    return value


def _seed_model_widgets(view: View, link: LinkState, *, overwrite: bool) -> None:
    ss = st.session_state
    page = view.page
    family = link.config.family
    if overwrite or f"{page}:w.family" not in ss:
        ss[f"{page}:w.family"] = family
    if overwrite or f"{page}:w.preset" not in ss:
        ss[f"{page}:w.preset"] = link.preset
    for spec in link.config.field_specs():
        key = _widget_key(page, link.preset, spec.name)
        if overwrite or key not in ss:
            ss[key] = _widget_value(spec, getattr(link.config, spec.name))


def _on_family_change(page: str) -> None:
    ss = st.session_state
    presets = vac.list_models(ss[f"{page}:w.family"])
    if ss.get(f"{page}:w.preset") not in presets:
        ss[f"{page}:w.preset"] = presets[0]


def _field_widget(spec: FieldSpec, key: str, container) -> None:
    help_text = spec.help
    label = spec.name
    if spec.choices is not None:
        container.selectbox(label, list(spec.choices), key=key, help=help_text)
    elif spec.type is bool:
        container.checkbox(label, key=key, help=help_text)
    elif spec.type is int and not spec.optional:
        low = int(spec.min) if spec.min is not None else None
        high = int(spec.max) if spec.max is not None else None
        if low is not None and high is not None and high - low <= _MAX_SLIDER_SPAN:
            container.slider(label, min_value=low, max_value=high, step=1, key=key, help=help_text)
        else:
            container.number_input(label, min_value=low, max_value=high, step=1, key=key, help=help_text)
    elif spec.type in (int, float):
        is_int = spec.type is int
        low = (int(spec.min) if is_int else float(spec.min)) if spec.min is not None else None
        high = (int(spec.max) if is_int else float(spec.max)) if spec.max is not None else None
        step = 1 if is_int else (0.05 if high is not None and high <= 1 else 0.25)
        container.number_input(label + (" (empty: none)" if spec.optional else ""), min_value=low,
                               max_value=high, step=step, format=None if is_int else "%g", key=key,
                               help=help_text)
    else:
        hint = " (comma-separated)" if _is_tuple(spec) else ""
        container.text_input(label + hint, key=key, help=help_text + (" Write none for none." if spec.optional
                                                                       else ""))


def _parse_widget(spec: FieldSpec, raw: Any) -> Any:
    """The widget's value as the config field's type; raises ConfigError when text does not parse."""
    if isinstance(raw, str) and spec.choices is None and spec.type is not str:
        return coerce_value(spec, raw)
    if spec.type is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


def model_picker(view: View, container=None) -> tuple[str, vac.ModelConfig | None]:
    """Family and preset boxes, then one widget per hyperparameter, generated from the config's field specs.

    Returns ``(preset, config)``; ``config`` is None when the settings are invalid, in which case the
    ConfigError's message is shown under the field it names (or above the fields when it names none)."""
    container = container or st.sidebar
    page = view.page
    families = [f.name for f in vac.list_families()]
    container.selectbox("family", families, key=f"{page}:w.family", on_change=_on_family_change, args=(page,))
    presets = vac.list_models(st.session_state[f"{page}:w.family"])
    if st.session_state.get(f"{page}:w.preset") not in presets:
        st.session_state[f"{page}:w.preset"] = presets[0]
    container.selectbox("preset", presets, key=f"{page}:w.preset",
                        help="A named configuration; every field below starts from it.")
    preset = st.session_state[f"{page}:w.preset"]
    base = vac.get_preset(preset).config
    container.caption(vac.get_preset(preset).description)
    # seed the fields of a preset the user just picked (its own defaults, or the link's values for it)
    seed = view.link if view.link.preset == preset else parse_link({"model": preset})
    _seed_model_widgets(view, seed, overwrite=False)

    top_slot = container.empty()
    values: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    problems: list[tuple[str | None, str]] = []
    box = container.expander("hyperparameters", expanded=True)
    for spec in base.field_specs():
        key = _widget_key(page, preset, spec.name)
        _field_widget(spec, key, box)
        slots[spec.name] = box.empty()
        try:
            values[spec.name] = _parse_widget(spec, st.session_state[key])
        except vac.ConfigError as exc:
            problems.append((spec.name, str(exc)))
    config = None
    if not problems:
        overrides = {k: v for k, v in values.items() if v != getattr(base, k)}
        try:
            config = base.replace(**overrides)
        except vac.ConfigError as exc:
            problems.append((exc.field, str(exc)))
    for name, message in problems:
        (slots.get(name) or top_slot).error(message, icon=":material/warning:")
    if problems:
        st.error("These hyperparameters do not make a valid model: "
                 + " ".join(message for _, message in problems))
    return preset, config


def config_key(preset: str, config: vac.ModelConfig) -> ConfigKey:
    return tuple(sorted(make_link(preset, config).items()))


def config_of(key: ConfigKey) -> vac.ModelConfig:
    link = parse_link(dict(key))
    if link.ignored:  # a key is always made from a valid config; anything else is a bug
        raise RuntimeError("; ".join(link.ignored))
    return link.config


# ------------------------------------------------------------------------------------------------ caches

@st.cache_resource(max_entries=256, show_spinner=False)
def summary(key: ConfigKey, frames: int | None = None, size: int | None = None):
    """The static summary (shapes, params, MACs per layer) of a config; shared read-only by all sessions."""
    return inspection.summarize(config_of(key), frames, size)


def leaf_rows(summary) -> list[dict[str, Any]]:
    """The records charts sum (leaves and modules owning parameters), with their own counts."""
    return [{"name": r.name or "(model)", "category": r.category, "params": r.params, "macs": r.macs}
            for r in summary.leaves()]


def layer_table(summary) -> list[dict[str, Any]]:
    """The per-layer table: one row per module, shapes with their axis meaning, own and total counts."""
    return [{"name": r.name or "(model)", "type": r.type, "depth": r.depth, "input shape": _shape(r.input_shape),
             "output shape": _shape(r.output_shape), "axes": r.layout, "params": r.params_total,
             "MACs": r.macs_total, "own params": r.params, "own MACs": r.macs, "category": r.category}
            for r in summary.layers]


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape) if shape else ""


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _attention_macs(summary) -> int:
    return sum(r.macs for r in summary.layers if r.category == "attention")


def _points(current: int, factors: tuple[float, ...], multiple: int = 1, limit: int = 4096) -> list[int]:
    out = []
    for f in factors:
        p = max(multiple, int(round(current * f / multiple)) * multiple)
        if p <= limit and p not in out:
            out.append(p)
    return sorted(out)


def _alternatives(preset: str, config: vac.ModelConfig) -> list[tuple[str, ConfigKey]]:
    """Other attention schemes of the same config (the ``attention_type`` choices), for dashed curves."""
    specs = {s.name: s for s in config.field_specs()}
    spec = specs.get("attention_type")
    out = []
    if spec is not None and spec.choices:
        for choice_ in spec.choices:
            if choice_ == config.attention_type:
                continue
            try:
                out.append((str(choice_), config_key(preset, config.replace(attention_type=choice_))))
            except vac.ConfigError:
                continue
    return out


def growth_curves(preset: str, config: vac.ModelConfig, axis: str):
    """MACs of this config against ``axis`` ("frames" or "size"): total and attention, plus the other attention
    schemes' totals (dashed). Points the model cannot take are skipped."""
    key = config_key(preset, config)
    base = summary(key)
    if axis == "frames":
        current = base.frames or 1
        points = _points(current, (0.25, 0.5, 1, 2, 4), limit=1024)
    else:
        current = int(base.input_shape[-1])
        points = _points(current, (0.5, 0.75, 1, 1.5, 2), multiple=32 if current % 32 == 0 else 1)
    series: dict[str, tuple[list[int], list[float]]] = {}
    dashed: list[str] = []

    def run(name: str, k: ConfigKey, with_attention: bool) -> None:
        xs, totals, attention = [], [], []
        for p in points:
            try:
                s = summary(k, frames=p) if axis == "frames" else summary(k, size=p)
            except (vac.VideoAttnError, ValueError, RuntimeError):
                continue
            xs.append(p)
            totals.append(float(s.macs))
            attention.append(float(_attention_macs(s)))
        if xs:
            series[f"{name}: total"] = (xs, totals)
            if with_attention:
                series[f"{name}: attention"] = (xs, attention)

    attention_type = getattr(config, "attention_type", None)
    run(f"this config{f' ({attention_type})' if attention_type else ''}", key, True)
    for name, k in _alternatives(preset, config):
        run(name, k, True)
        dashed += [f"{name}: total", f"{name}: attention"]
    return series, dashed, current


def growth_note(series: dict[str, tuple[list[int], list[float]]], axis: str) -> str:
    """How much each curve grows when the input doubles along ``axis`` (read off the computed points)."""
    parts = []
    for name, (xs, ys) in series.items():
        pairs = dict(zip(xs, ys))
        for x in xs:
            if 2 * x in pairs and pairs[x] > 0:
                parts.append(f"{name} ×{pairs[2 * x] / pairs[x]:.2f}")
                break
    what = "frames" if axis == "frames" else "the side in pixels"
    return (f"Doubling {what} multiplies: " + "; ".join(parts) + ".") if parts else ""


def auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def format_count(n: float | None) -> str:
    return figures.human(n) if n is not None else "–"


format_bytes = analysis.format_bytes


def choice(text: str, allowed, name: str) -> str:
    """Parser of a page setting that must be one of ``allowed`` (for ``parse_link``'s page fields)."""
    if text not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}")
    return text


def integer(text: str, name: str, low: int = 0, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be from {low} to {high}" if high is not None else f"{name} must be ≥ {low}")
    return value


def seed_page(view: View, widgets: Mapping[str, tuple[str, Any]], values: Mapping[str, Any] | None = None) -> None:
    """Give each page widget (key -> (link field, default)) its value from the view state (``values``, else the
    link's page state) when the page is entered, or when the widget has no value yet."""
    ss = st.session_state
    values = view.link.page if values is None else values
    for key, (name, default) in widgets.items():
        if view.entered or key not in ss:
            ss[key] = values.get(name, default)


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------------ runs




ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: largest clip a user may upload, in MB (Streamlit refuses bigger files before they reach the app)
CLIP_UPLOAD_MB = 50
#: largest checkpoint a user may upload, in MB (server.maxUploadSize in .streamlit/config.toml)
CHECKPOINT_UPLOAD_MB = 1024
#: forwards cheaper than this run as soon as a page opens; dearer ones wait for the Run button (CPU only)
AUTO_RUN_MACS = 250e9
DTYPES = runtime.DTYPES


def sample_clips() -> dict[str, Path]:
    """The sample clips shipped in ``assets/``, by name (file stem)."""
    return {p.stem: p for p in sorted(ASSETS.glob("*.mp4"))}


def default_clip() -> str:
    clips = sample_clips()
    return "moving_square" if "moving_square" in clips else next(iter(clips), "")


def parse_clip(text: str) -> str:
    if text == "upload":
        raise ValueError(f"an uploaded clip cannot travel in a link; showing the sample clip {default_clip()} "
                         f"instead")
    if text not in sample_clips():
        raise ValueError(f"clip must be one of the sample clips: {', '.join(sample_clips())}")
    return text


def parse_weights(text: str) -> str:
    if text == "upload":
        raise ValueError("an uploaded checkpoint cannot travel in a link; using random weights instead")
    if text != "random":
        try:
            weights_catalog.get_entry(text)
        except vac.WeightsError as exc:
            raise ValueError(str(exc)) from None
    return text


def parse_device(text: str) -> str:
    allowed = ("auto", "cpu", "cuda")
    if text not in allowed:
        raise ValueError(f"device must be one of {', '.join(allowed)}")
    if text == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this server; using auto (the CPU)")
    return text


RUN_FIELDS: dict[str, Callable[[str], Any]] = {
    "clip": parse_clip,
    "weights": parse_weights,
    "device": parse_device,
    "dtype": lambda text: choice(text, tuple(DTYPES), "dtype"),
}
_RUN_DEFAULTS = {"clip": None, "weights": "random", "device": "auto", "dtype": "float32"}
_RUN_SHARED = "_run_inputs"  # the run inputs the Run and Attention pages share in a session
_UPLOAD = "_uploaded_clip"
_CHECKPOINT = "_uploaded_checkpoint"


@dataclass(frozen=True)
class RunInputs:
    """What a run needs besides the model config; every field is hashable (cache keys)."""

    clip: str  # sample name, or "upload:<sha256 prefix>"
    weights: str  # "random", a catalog entry, or "upload:<sha256 prefix>"
    device: str  # "cpu" or "cuda"
    dtype: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.clip, self.weights, self.device, self.dtype)

    @property
    def uploaded_clip(self) -> bool:
        return self.clip.startswith("upload:")

    @property
    def uploaded_weights(self) -> bool:
        return self.weights.startswith("upload:")


def run_inputs(view: View, preset: str, config: vac.ModelConfig) -> tuple[RunInputs, dict[str, Any]]:
    """The clip, weights, device and dtype widgets (shared by the Run and Attention pages); returns the inputs
    and the page state they put in the link."""
    ss = st.session_state
    page = view.page
    shared = ss.get(_RUN_SHARED, {})
    defaults = {**_RUN_DEFAULTS, "clip": default_clip()}
    # an opened link says what to show; a page switch carries the other page's clip and weights over
    values = view.link.page if view.opened else {**view.link.page, **shared}
    seed_page(view, {f"{page}.{name}": (name, defaults[name]) for name in _RUN_DEFAULTS}, values)
    seed_page(view, {f"{page}.source": ("source", "sample")},
              {} if view.opened else {"source": "upload" if shared.get("upload") else "sample"})

    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        source = st.radio("clip", ("sample", "upload"), horizontal=True, key=f"{page}.source",
                          format_func=lambda s: {"sample": "sample clip", "upload": "upload a clip"}[s])
        sample = st.selectbox("sample clip", list(sample_clips()), key=f"{page}.clip",
                              disabled=source != "sample")
        clip_id = sample
        if source == "upload":
            file = st.file_uploader(
                f"video file (at most {CLIP_UPLOAD_MB} MB; MP4, MOV, WebM, MKV, AVI or GIF)",
                type=["mp4", "mov", "m4v", "webm", "mkv", "avi", "gif"], key=f"{page}.upload",
                max_upload_size=CLIP_UPLOAD_MB,
                help="Decoded in memory, never written to disk; it cannot travel in a share link.")
            if file is not None:
                data = file.getvalue()
                digest = hashlib.sha256(data).hexdigest()[:16]
                ss[_UPLOAD] = (digest, data, len(data))
            if ss.get(_UPLOAD):
                digest, _, size = ss[_UPLOAD]
                clip_id = f"upload:{digest}"
                st.caption(f"uploaded clip: {format_bytes(size)} (sha256 {digest}…)")
            else:
                st.info(f"Upload a clip, or the sample clip {sample} is used.")
    with c2:
        entries = [e.name for e in weights_catalog.list_weights(preset)]
        options = ["random", *entries, "upload"]
        if ss.get(f"{page}.weights") not in options:
            ss[f"{page}.weights"] = "random"
        weights = st.selectbox("weights", options, key=f"{page}.weights",
                               format_func=lambda w: {"random": "random initialisation",
                                                      "upload": "upload a checkpoint"}.get(w, w),
                               help="A catalog entry is fetched once into the standard caches (torch hub / "
                                    "Hugging Face) and verified.")
        weights_id = weights
        if weights == "upload":
            file = st.file_uploader(f"checkpoint (at most {CHECKPOINT_UPLOAD_MB} MB; .pth, .pyth, .pt, .bin, "
                                    f".safetensors)", type=["pth", "pyth", "pt", "bin", "safetensors", "ckpt"],
                                    key=f"{page}.checkpoint", max_upload_size=CHECKPOINT_UPLOAD_MB,
                                    help="Read in memory with weights_only=True or safetensors: it cannot run code.")
            if file is not None:
                data = file.getvalue()
                ss[_CHECKPOINT] = (hashlib.sha256(data).hexdigest()[:16], data)
            if ss.get(_CHECKPOINT):
                weights_id = f"upload:{ss[_CHECKPOINT][0]}"
            else:
                st.info("Upload a checkpoint; until then the weights are random.")
                weights_id = "random"
    with c3:
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if ss.get(f"{page}.device") not in devices:
            ss[f"{page}.device"] = "auto"
        device_choice = st.selectbox("device", devices, key=f"{page}.device",
                                     help="auto: CUDA when this server has a GPU, else the CPU.")
        device = auto_device() if device_choice == "auto" else device_choice
        dtype = st.selectbox("dtype", list(DTYPES), key=f"{page}.dtype", disabled=device == "cpu",
                             help="bfloat16 only on a GPU.")
        if device == "cpu":
            dtype = "float32"
        st.caption(f"running on **{device}**")
    ss[_RUN_SHARED] = {"clip": sample, "weights": weights if weights != "upload" or ss.get(_CHECKPOINT) else
                       "random", "device": device_choice, "dtype": dtype,
                       "upload": source == "upload" and clip_id.startswith("upload:")}
    page_state = {"clip": "upload" if source == "upload" and clip_id.startswith("upload:") else sample,
                  "weights": None if weights == "random" else weights, "device": None if device_choice == "auto"
                  else device_choice, "dtype": None if dtype == "float32" else dtype}
    return RunInputs(clip=clip_id, weights=weights_id, device=device, dtype=dtype), page_state


def uploaded_note(inputs: RunInputs) -> str | None:
    notes = []
    if inputs.uploaded_clip:
        notes.append(f"the uploaded clip cannot travel in a link: whoever opens it sees the sample clip "
                     f"{default_clip()}")
    if inputs.uploaded_weights:
        notes.append("the uploaded checkpoint cannot travel in a link: whoever opens it gets random weights")
    return "; ".join(notes) or None


def weights_config(preset: str, config: vac.ModelConfig, inputs: RunInputs) -> tuple[vac.ModelConfig, list[str]]:
    """The config a run builds: the user's, with the fields a catalog entry needs (e.g. its class count)."""
    if inputs.weights in ("random",) or inputs.uploaded_weights:
        return config, []
    entry = weights_catalog.get_entry(inputs.weights)
    changed = {k: v for k, v in entry.overrides.items() if getattr(config, k) != v}
    if not changed:
        return config, []
    return config.replace(**changed), [f"{k}={v!r} (needed by {entry.name})" for k, v in changed.items()]


def memory_check(run_summary, inputs: RunInputs, captured: tuple[str, ...] = ()) -> str | None:
    """A refusal message when the forward's estimated memory exceeds what the device has free, else None."""
    return analysis.memory_plan(run_summary, inputs.device, DTYPES[inputs.dtype].itemsize,
                                captured=captured)["refusal"]


def run_plan(key: ConfigKey, weights: str, device: str, dtype: str, checkpoint: bytes | None = None,
             views: str = "single", clip: Any = None) -> runtime.RunPlan:
    """The core's plan of a run from the page's inputs (the same pipeline as ``vac.predict`` and the CLI)."""
    config = config_of(key)
    preset = dict(key)["model"]
    entry = None if weights == "random" or weights.startswith("upload:") else weights
    return runtime.plan_run(preset, clip, weights=entry, checkpoint=checkpoint if weights.startswith("upload:")
                            else None, overrides=config.diff(vac.get_preset(preset).config), device=device,
                            dtype=dtype, views=views, estimate=clip is not None)


@st.cache_resource(max_entries=2, show_spinner=False)
def load_model(key: ConfigKey, weights: str, device: str, dtype: str, _checkpoint: bytes | None = None
               ) -> runtime.RunModel:
    """A model ready to run, shared by every session (bounded: the two most recent). Random weights are
    seeded (seed 0, as the CLI's default), so a shared link shows the same predictions to everyone."""
    return runtime.load_model(run_plan(key, weights, device, dtype, _checkpoint))


@dataclass
class LoadedClipView:
    tensor: torch.Tensor  # (views, C, T, S, S) model input
    frames: np.ndarray  # (T, S, S, 3) uint8: what the model sees in the first view, before normalisation
    description: str
    notes: list[str]
    frame_indices: list[int]


@st.cache_data(max_entries=16, show_spinner=False)
def load_clip(clip: str, key: ConfigKey, weights: str, views: str = "single", _data: bytes | None = None
              ) -> LoadedClipView:
    """Decode and preprocess a clip with the recipe of the chosen weights (or the preset's), cached by clip id
    (an upload is identified by its hash; its bytes never touch the disk)."""
    source = _data if clip.startswith("upload:") else sample_clips()[clip]
    plan = run_plan(key, weights, "cpu", "float32", None if not weights.startswith("upload:") else b"", views)
    loaded = runtime.load_inputs(plan, source, limits=video.Limits(max_file_bytes=CLIP_UPLOAD_MB * 1024 ** 2))
    r = loaded.recipe
    frames = preprocessing.shown_pixels(loaded.clip.view_frames(0), resize=r.resize, crop=r.crop,
                                        resampling=r.resampling)
    return LoadedClipView(loaded.tensor, frames, loaded.clip.summary(), list(loaded.clip.notes),
                          list(loaded.clip.frame_indices))


def clip_bytes(inputs: RunInputs) -> bytes | None:
    upload = st.session_state.get(_UPLOAD)
    return upload[1] if inputs.uploaded_clip and upload else None


def checkpoint_bytes(inputs: RunInputs) -> bytes | None:
    upload = st.session_state.get(_CHECKPOINT)
    return upload[1] if inputs.uploaded_weights and upload else None


@st.cache_resource(max_entries=3, show_spinner=False)
def run_inspection(key: ConfigKey, inputs: tuple[str, str, str, str], capture: tuple[str, ...],
                   _loaded: runtime.RunModel, _clip: LoadedClipView, measure_macs: bool = True):
    """One measured forward of the first view (per-layer time, measured MACs, captured attention), shared by all
    sessions."""
    _, _, device, dtype = inputs
    x = _clip.tensor[:1].to(device=torch.device(device), dtype=DTYPES[dtype])
    with _loaded.lock:  # hooks and capture sinks sit on the shared model: one forward at a time
        return vac.inspect(_loaded.model, x, attention_layers=list(capture), measure_macs=measure_macs)


@st.cache_resource(max_entries=3, show_spinner=False)
def view_probabilities(key: ConfigKey, inputs: tuple[str, str, str, str], views: str, _loaded: runtime.RunModel,
                       _clip: LoadedClipView):
    """Softmax probabilities averaged over the clip's views (the core's ``classify``, as ``vac.predict``)."""
    _, _, device, dtype = inputs
    with _loaded.lock:
        return runtime.classify(_loaded.model, _clip.tensor, device=device, dtype=DTYPES[dtype])


@st.cache_data(max_entries=8, show_spinner=False)
def timeline(key: ConfigKey, inputs: tuple[str, str, str, str], stride_s: float, _loaded: runtime.RunModel,
             _data: bytes | None = None) -> dict[str, Any]:
    """Predictions over the whole clip, a window every ``stride_s`` seconds (the core's ``timeline_of``)."""
    from videoattn_core.predict import timeline_of

    clip, weights, device, dtype = inputs
    source = _data if clip.startswith("upload:") else sample_clips()[clip]
    plan = run_plan(key, weights, device, dtype, b"" if weights.startswith("upload:") else None)
    with _loaded.lock:
        return timeline_of(plan, _loaded, source, stride_s=stride_s, probabilities=True,
                           limits=video.Limits(max_file_bytes=CLIP_UPLOAD_MB * 1024 ** 2))


def clip_plan(key: ConfigKey, inputs: "RunInputs", views: str) -> dict[str, Any]:
    """The run's plan with the clip probed (frame indices of every view), as ``predict --dry-run`` prints it."""
    source = clip_bytes(inputs) if inputs.uploaded_clip else sample_clips()[inputs.clip]
    return run_plan(key, inputs.weights, inputs.device, inputs.dtype, b"" if inputs.uploaded_weights else None,
                    views, clip=source).to_dict()


def measured_table(result) -> list[dict[str, Any]]:
    """The measured per-layer table: shapes, time, analytic against measured MACs."""
    return [{"name": r.name or "(model)", "type": r.type, "input shape": _shape(r.input_shape),
             "output shape": _shape(r.output_shape), "axes": r.layout,
             "time (ms)": round(1e3 * r.time_s, 3) if r.time_s is not None else None,
             "own time (ms)": round(1e3 * r.self_time_s, 3) if r.self_time_s is not None else None,
             "analytic MACs": r.macs_total, "measured MACs": r.measured_macs_total}
            for r in result.layers]


def needs_button(run_summary, inputs: RunInputs) -> bool:
    return inputs.device == "cpu" and run_summary.macs > AUTO_RUN_MACS


def approved(page: str, token: Any) -> bool:
    """Whether the user pressed Run for exactly these settings (heavy forwards wait for the button)."""
    ss = st.session_state
    if st.button("Run", type="primary", key=f"{page}.run"):
        ss[f"{page}.approved"] = token
    return ss.get(f"{page}.approved") == token


# ------------------------------------------------------------------------------------------------ attention



def layer_kinds(model: torch.nn.Module) -> dict[str, str]:
    """Each capturable attention layer with the kind(s) of attention it computes (space, time, joint, ...)."""
    modules = dict(model.named_modules())
    out = {}
    for name in vac.attention_layers(model):
        kinds = sorted({m.kind for m in modules[name].modules() if isinstance(m, AttentionCore)})
        out[name] = "+".join(kinds)
    return out


def parse_query(text: str) -> str | tuple[int, int, int]:
    if text == "cls":
        return "cls"
    try:
        t, y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError("query must be cls or t,y,x (a token position, whole numbers)") from None
    if min(t, y, x) < 0:
        raise ValueError("query positions are ≥ 0")
    return (t, y, x)


def parse_head(text: str) -> str | int:
    if text == "mean":
        return "mean"
    return integer(text, "head", 0, 1023)


@st.cache_resource(max_entries=2, show_spinner=False)
def rollout(key: ConfigKey, inputs: tuple[str, str, str, str], _loaded: runtime.RunModel,
            _clip: LoadedClipView) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema) of the CLS token over the token grid; ValueError with the reason when
    the architecture does not allow it."""
    _, _, device, dtype = inputs
    x = _clip.tensor[:1].to(device=torch.device(device), dtype=DTYPES[dtype])
    with _loaded.lock:
        return attention_maps.rollout(_loaded.model, x)


# ------------------------------------------------------------------------------------------------ compare

def stage_tokens(run_summary) -> list[tuple[str, int]]:
    """Tokens per stage: each distinct query grid the attention layers run on, in order (MViT pools it, Video
    Swin merges patches, TimeSformer keeps one), counted with the CLS token where there is one."""
    stages: list[tuple[str, int]] = []
    seen: list[tuple[int, int, int]] = []
    for r in run_summary.layers:
        layout = getattr(r, "attention_layout", None)
        if layout is None or r.type != "AttentionCore":
            continue
        grid = tuple(layout.q_grid or layout.grid)
        if grid in seen:
            continue
        seen.append(grid)
        tokens = int(np.prod(grid)) + (1 if layout.cls else 0)
        stages.append((f"stage {len(seen)}", tokens))
    return stages


def stage_grids(run_summary) -> str:
    grids = []
    for r in run_summary.layers:
        layout = getattr(r, "attention_layout", None)
        if layout is not None and r.type == "AttentionCore":
            text = "×".join(map(str, layout.q_grid or layout.grid))
            if text not in grids:
                grids.append(text)
    return " → ".join(grids)


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """``"mvit_v2_s;num_frames=8;depths=1,1,1,1"`` -> ``("mvit_v2_s", {"num_frames": "8", ...})``."""
    preset, *pairs = [part.strip() for part in text.split(";") if part.strip()] or [""]
    if preset not in vac.list_models():
        raise ValueError(f"unknown model {preset!r}; available: {', '.join(vac.list_models())}")
    raw = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r} is not field=value")
        raw[name.strip()] = value.strip()
    return preset, raw


def spec_config(preset: str, overrides_text: str) -> vac.ModelConfig:
    """A preset with ``field=value; field=value`` overrides; ConfigError names what is wrong."""
    base = vac.get_preset(preset).config
    raw = {}
    for pair in [p.strip() for p in overrides_text.split(";") if p.strip()]:
        name, sep, value = pair.partition("=")
        if not sep:
            raise vac.ConfigError(f"{pair!r} is not field=value; write e.g. num_frames=16; separate with ';'")
        raw[name.strip()] = value.strip()
    return base.replace(**vac.coerce_overrides(type(base), raw))


def spec_text(preset: str, config: vac.ModelConfig) -> str:
    params = make_link(preset, config)
    return ";".join([preset] + [f"{k}={v}" for k, v in params.items() if k != "model"])


@st.cache_data(max_entries=32, show_spinner=False)
def measure_forward(key: ConfigKey, device: str, dtype: str) -> dict[str, float]:
    """Wall time of one forward (after a warm-up forward) and its peak memory on ``device``, random
    weights and a random clip of the config's input shape. Peak memory: CUDA's allocator peak on a GPU; on the
    CPU, torch's MemTracker (parameters + live activations + the input)."""
    import time

    config = config_of(key)
    model = runtime.build_seeded(config, 0)
    x = torch.randn(config.input_shape(), generator=torch.Generator().manual_seed(0))
    dev = torch.device(device)
    model = model.to(device=dev, dtype=DTYPES[dtype]).eval()
    x = x.to(device=dev, dtype=DTYPES[dtype])
    with torch.no_grad():
        if dev.type == "cuda":
            model(x)
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            start = time.perf_counter()
            model(x)
            torch.cuda.synchronize(dev)
            elapsed = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated(dev)
            return {"time_s": elapsed, "peak_bytes": float(peak), "baseline_bytes": float(base)}
        from torch.distributed._tools.mem_tracker import MemTracker

        tracker = MemTracker()  # the first forward measures memory and warms up; the second is timed
        tracker.track_external(model, x)
        with tracker:
            model(x)
        peak = tracker.get_tracker_snapshot("peak")
        total = sum(float(v.get("Total", 0)) for v in peak.values())
        start = time.perf_counter()
        model(x)
        elapsed = time.perf_counter() - start
        return {"time_s": elapsed, "peak_bytes": total, "baseline_bytes": 0.0}
