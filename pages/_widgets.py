"""Widgets generated from the core: the model picker (one widget per config field, from its ``hparam`` spec) and
the run inputs (clip, weights, device, dtype) the Run and Attention pages share."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

import videoattn_core as vac
from pages import _hub
from pages import _clips
from pages._model_seed import is_tuple_field, widget_key, seed_model_widgets
from pages._state import View, choice, integer, remembered, seed_page
from videoattn_core.config import FieldSpec, coerce_value
from videoattn_core.units import human_bytes
from videoattn_core.links import parse_link
from videoattn_core.run import devices
from videoattn_core.weights import lookup as weights_catalog

_MAX_SLIDER_SPAN = 512           # integer fields with a smaller range get a slider, others a number box
#: largest clip a user may upload, in MB (Streamlit refuses bigger files before they reach the app)
CLIP_UPLOAD_MB = 50
#: largest checkpoint a user may upload, in MB (server.maxUploadSize in .streamlit/config.toml)
CHECKPOINT_UPLOAD_MB = 1024
#: forwards cheaper than this run as soon as a page opens; dearer ones wait for the Run button (CPU only)
AUTO_RUN_MACS = 250e9
DTYPES = tuple(devices.DTYPES)


def count_columns(*columns: str) -> dict[str, Any]:
    """The column configuration of a table's counts (parameters, MACs): numbers, so that they sort as numbers,
    drawn with the browser's thousands separators (``21,142,672``)."""
    return {column: st.column_config.NumberColumn(format="localized") for column in columns}


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
        hint = " (comma-separated)" if is_tuple_field(spec) else ""
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
    """The Hugging Face model field, family and preset boxes, then one widget per hyperparameter, generated from
    the config's field specs.

    Returns ``(preset, config)`` (``preset`` the model's name: a preset, or ``hf:ORG/NAME`` of the field);
    ``config`` is None when the settings are invalid, in which case the ConfigError's message is shown under the
    field it names (or above the fields when it names none)."""
    container = container or st.sidebar
    page = view.page
    hub_model, hub_problem = _hub.hub_field(page, container)
    if hub_problem:
        container.error(hub_problem, icon=":material/warning:")
        st.error(f"The Hugging Face model cannot be opened: {hub_problem}")
        return st.session_state[_hub.field_key(page)], None
    families = [f.name for f in vac.list_families()]
    container.selectbox("family", families, key=f"{page}:w.family", on_change=_on_family_change, args=(page,),
                        disabled=hub_model is not None)
    presets = vac.list_models(st.session_state[f"{page}:w.family"])
    if st.session_state.get(f"{page}:w.preset") not in presets:
        st.session_state[f"{page}:w.preset"] = presets[0]
    container.selectbox("preset", presets, key=f"{page}:w.preset", disabled=hub_model is not None,
                        help="A named configuration; every field below starts from it.")
    preset = hub_model or st.session_state[f"{page}:w.preset"]
    base = vac.get_preset(preset).config
    container.caption(vac.get_preset(preset).description)
    # seed the fields of a model the user just picked (its own defaults, or the link's values for it)
    seed = view.link if view.link.preset == preset else parse_link({"model": preset}, allow_paths=True)
    seed_model_widgets(view, seed, overwrite=False)

    top_slot = container.empty()
    values: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    problems: list[tuple[str | None, str]] = []
    box = container.expander("hyperparameters", expanded=True)
    for spec in base.field_specs():
        key = widget_key(page, preset, spec.name)
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


def parse_weights(text: str) -> str:
    if text == "upload":
        raise ValueError("an uploaded checkpoint cannot travel in a link; using random weights instead")
    if text not in ("random", REPOSITORY):
        try:
            weights_catalog.get_entry(text)
        except vac.WeightsError as exc:
            raise ValueError(str(exc)) from None
    return text


def parse_device(text: str) -> str:
    allowed = ("auto", "cpu", "cuda")
    if text not in allowed:
        raise ValueError(f"device must be one of {', '.join(allowed)}")
    if text == "cuda" and not devices.cuda_available():
        raise ValueError("CUDA is not available on this server; using auto (the CPU)")
    return text


RUN_FIELDS: dict[str, Callable[[str], Any]] = {
    "clip": _clips.parse_clip,
    "weights": parse_weights,
    "device": parse_device,
    "dtype": lambda text: choice(text, DTYPES, "dtype"),
    "sampling_rate": lambda text: integer(text, "sampling_rate", 1, 1000),
}


def dtype_help(device: str) -> str:
    return f"bfloat16: 16-bit weights and activations, logits ~1 % off float32's; {devices.bfloat16_support(device)}."


_RUN_DEFAULTS = {"clip": None, "weights": "random", "device": "auto", "dtype": "float32", "sampling_rate": 1}
#: the weights of a model named by where it lives: its repository's own
REPOSITORY = "repository"
WEIGHTS_NAMES = {"random": "random initialisation", "upload": "upload a checkpoint",
                 REPOSITORY: "the repository's weights"}
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
    sampling_rate: int | None = None  # the pipeline's frame step of a Hugging Face model (None: a preset's recipe)

    @property
    def key(self) -> tuple[str, str, str, str, int | None]:
        return (self.clip, self.weights, self.device, self.dtype, self.sampling_rate)

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
    defaults = {**_RUN_DEFAULTS, "clip": _clips.default_clip()}
    # an opened link says what to show; a page switch carries the other page's clip and weights over
    values = view.link.page if view.opened else {**view.link.page, **shared}
    seed_page(view, {f"{page}.{name}": (name, defaults[name]) for name in _RUN_DEFAULTS}, values)
    seed_page(view, {f"{page}.source": ("source", "sample")},
              {} if view.opened else {"source": "upload" if shared.get("upload") else "sample"})

    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        source, sample, clip_id = _clip_widgets(page)
    with c2:
        hub = vac.get_preset(preset).origin is not None
        entries = [e.name for e in weights_catalog.list_weights(preset)]
        options = [REPOSITORY, "upload"] if hub else ["random", *entries, "upload"]
        if ss.get(f"{page}.weights") not in options:
            ss[f"{page}.weights"] = options[0]
        weights = st.selectbox("weights", options, key=f"{page}.weights", format_func=lambda w: WEIGHTS_NAMES.get(w, w),
                               help="A catalog entry (or the repository's weights) is fetched once into the "
                                    "standard caches (torch hub / Hugging Face) and verified.")
        rate = _hub.sampling_rate_input(page, st) if hub else None
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
                st.info("Upload a checkpoint; until then the weights are "
                        + ("the repository's." if hub else "random."))
                weights_id = REPOSITORY if hub else "random"
    with c3:
        choices = ["auto", "cpu"] + (["cuda"] if devices.cuda_available() else [])
        if ss.get(f"{page}.device") not in choices:
            ss[f"{page}.device"] = "auto"
        device_choice = st.selectbox("device", choices, key=f"{page}.device",
                                     help="auto: CUDA when this server has a GPU, else the CPU.")
        device = str(devices.resolve_device("auto")) if device_choice == "auto" else device_choice
        dtype = st.selectbox("dtype", list(DTYPES), key=f"{page}.dtype", help=dtype_help(device))
        st.caption(f"running on **{device}**" + (" in bfloat16" if dtype == "bfloat16" else
                                                  " · bfloat16 would be faster: this device computes it in hardware"
                                                  if devices.native_bfloat16(device) else ""))
    ss[_RUN_SHARED] = {"clip": sample, "weights": weights if weights != "upload" or ss.get(_CHECKPOINT) else
                       options[0], "device": device_choice, "dtype": dtype, "sampling_rate": rate or 1,
                       "upload": source == "upload" and clip_id.startswith("upload:")}
    page_state = {"clip": "upload" if source == "upload" and clip_id.startswith("upload:") else sample,
                  "weights": None if weights == options[0] else weights, "device": None if device_choice == "auto"
                  else device_choice, "dtype": None if dtype == "float32" else dtype,
                  "sampling_rate": rate if rate not in (None, 1) else None}
    return RunInputs(clip=clip_id, weights=weights_id, device=device, dtype=dtype, sampling_rate=rate), page_state


def uploaded_note(inputs: RunInputs) -> str | None:
    notes = []
    if inputs.uploaded_clip:
        notes.append(f"the uploaded clip cannot travel in a link: whoever opens it sees the sample clip "
                     f"{_clips.default_clip()}")
    if inputs.uploaded_weights:
        notes.append("the uploaded checkpoint cannot travel in a link: whoever opens it gets random weights")
    return "; ".join(notes) or None


def clip_bytes(inputs: RunInputs) -> bytes | None:
    upload = st.session_state.get(_UPLOAD)
    return upload[1] if inputs.uploaded_clip and upload else None


def checkpoint_bytes(inputs: RunInputs) -> bytes | None:
    upload = st.session_state.get(_CHECKPOINT)
    return upload[1] if inputs.uploaded_weights and upload else None


def implied_fields(plan, config: vac.ModelConfig, inputs: RunInputs) -> list[str]:
    """The fields the run's weights changed in the user's ``config`` (a catalog entry's class count, …), as the
    page says them."""
    return [f"{k}={v!r} (needed by {inputs.weights})" for k, v in plan.config.diff(config).items()]


def needs_button(run_summary, inputs: RunInputs) -> bool:
    return inputs.device == "cpu" and run_summary.macs > AUTO_RUN_MACS


def _clip_widgets(page: str, sample_column=None) -> tuple[str, str, str]:
    """The clip radio (sample or upload), the sample box and the uploader; returns ``(source, sample, clip id)``,
    the id being the sample's name or ``upload:<sha256 prefix>`` (the sample while nothing is uploaded)."""
    ss = st.session_state
    source = st.radio("clip", ("sample", "upload"), horizontal=True, key=f"{page}.source",
                      format_func=lambda s: {"sample": "sample clip", "upload": "upload a clip"}[s])
    sample = (sample_column or st).selectbox("sample clip", _clips.clip_options(page), key=f"{page}.clip",
                                             disabled=source != "sample")
    if source == "sample":
        if sample in _clips.CLIP_CREDITS:
            (sample_column or st).caption(_clips.CLIP_CREDITS[sample])
        return source, sample, sample
    file = st.file_uploader(f"video file (at most {CLIP_UPLOAD_MB} MB; MP4, MOV, WebM, MKV, AVI or GIF)",
                            type=["mp4", "mov", "m4v", "webm", "mkv", "avi", "gif"], key=f"{page}.upload",
                            max_upload_size=CLIP_UPLOAD_MB,
                            help="Decoded in memory, never written to disk; it cannot travel in a share link.")
    if file is not None:
        data = file.getvalue()
        ss[_UPLOAD] = (hashlib.sha256(data).hexdigest()[:16], data, len(data))
    if not ss.get(_UPLOAD):
        st.info(f"Upload a clip, or the sample clip {sample} is used.")
        return source, sample, sample
    digest, _, size = ss[_UPLOAD]
    st.caption(f"uploaded clip: {human_bytes(size)} (sha256 {digest}…)")
    return source, sample, f"upload:{digest}"


def clip_input(view: View, page: str) -> tuple[str, str]:
    """A sample clip or an upload, for pages that run several models on one clip (no weights or device boxes);
    returns the clip id (sample name, or ``upload:<sha256 prefix>``) and its value in the link."""
    seed_page(view, {f"{page}.clip": ("clip", _clips.default_clip())})
    kept = "upload" if remembered(view, "clip") == "upload" else "sample"  # coming back keeps an uploaded clip
    seed_page(view, {f"{page}.source": ("source", kept)}, {})
    c1, c2 = st.columns([1, 2])
    with c1:
        _, _, clip_id = _clip_widgets(page, sample_column=c2)
    return clip_id, ("upload" if clip_id.startswith("upload:") else clip_id)


def uploaded_clip_bytes(clip: str) -> bytes | None:
    upload = st.session_state.get(_UPLOAD)
    return upload[1] if clip.startswith("upload:") and upload else None
