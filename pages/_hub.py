"""Widgets of models named by where they live (``hf:ORG/NAME[@REVISION]``, or a local directory where this server
allows it): the "Hugging Face model" field of the model picker, the repository's card on the Model page, the
pipeline's sampling rate and the wording of independent (multi-label) scores on the Run page."""

from __future__ import annotations

import ipaddress
import os
import re

import streamlit as st

import videoattn_core as vac
from videoattn_core.links import HUB_FIELD_HELP, open_model_name
from videoattn_core.weights import hub_card

#: ``1``: local model directories may be typed into the field; ``0``: never; unset: only for a browser on this
#: machine (a loopback address, no proxy in between)
LOCAL_MODELS_ENV = "VIDEOATTN_LOCAL_MODELS"
_PROXY_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded")


def local_models_allowed() -> bool:
    """Whether a local directory typed into the field is opened: the user runs the app on their own machine (or
    whoever runs the server allowed it). A link never opens one, whatever this says."""
    setting = os.environ.get(LOCAL_MODELS_ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    try:
        address = st.context.ip_address
        headers = st.context.headers or {}
        return bool(address) and ipaddress.ip_address(address).is_loopback and not any(
            headers.get(h) for h in _PROXY_HEADERS)
    except (ValueError, AttributeError, RuntimeError):
        return False


def field_key(page: str) -> str:
    return f"{page}:w.hub"


def seed_field(page: str, preset: str, *, overwrite: bool) -> None:
    """The field shows the view's model when it is not a preset."""
    if overwrite or field_key(page) not in st.session_state:
        st.session_state[field_key(page)] = "" if preset in vac.list_models() else preset


def hub_field(page: str, container) -> tuple[str | None, str | None]:
    """The "Hugging Face model" field; returns ``(model name, None)`` once it opens, ``(None, reason)`` when it
    cannot be opened, ``(None, None)`` while it is empty (the preset boxes are used)."""
    allowed = local_models_allowed()
    text = container.text_input("Hugging Face model", key=field_key(page), placeholder="hf:ORG/NAME[@REVISION]",
                                help=HUB_FIELD_HELP + (" A local directory holding a config.json is opened too (on "
                                                       "this machine only: it cannot travel in a link)."
                                                       if allowed else "")).strip()
    if not text:
        return None, None
    try:
        with st.spinner(f"reading {text}'s config.json…"):
            return open_model_name(text, allow_paths=allowed, typed=True), None
    except vac.VideoAttnError as exc:
        return None, str(exc)


def show_card(model) -> None:
    """The repository's card: where it lives, architecture, labels, scoring, processor (no weights fetched)."""
    card = hub_card.hub_card(model)
    st.markdown("\n".join(f"- **{what}**: {value}" for what, value in card.rows))
    if card.labels:
        with st.expander(f"all {card.label_count} labels (index name)", expanded=card.label_count <= 40):
            st.caption(card.labels)
    if card.processor is not None:
        with st.expander(f"processor settings ({model.processor_file})"):
            st.json(card.processor, expanded=True)
    for warning in card.warnings:
        st.warning(warning)


def sampling_rate_input(page: str, container) -> int:
    """The pipeline's frame step (``frame_sampling_rate`` of transformers' video-classification pipeline)."""
    return int(container.number_input(
        "sampling rate (frame step)", min_value=1, max_value=1000, step=1, key=f"{page}.sampling_rate",
        help="Frames are picked as transformers' video-classification pipeline picks them: num_frames frames from "
             "the first, this many frames apart (1: consecutive frames)."))


def scores_caption(scoring: str) -> str | None:
    """What a multi-label model's numbers mean (``None`` for a softmax)."""
    if scoring != "sigmoid":
        return None
    return ("Multi-label model: each class gets its own independent score (a sigmoid, from 0 to 1), not a share "
            "of a distribution; the scores need not add up to 1, and several classes can score high at once.")


def file_stem(model: str) -> str:
    """A model's name as a download's file name (``hf:org/name@v1`` → ``hf_org_name_v1``)."""
    return re.sub(r"[^\w.-]+", "_", model).strip("_") or "model"
