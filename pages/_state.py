"""View state: a page's whole state lives in the URL, so a copied link reopens the same view.

A page's state is a dict of query parameters (``model``, the non-default hyperparameters, page settings). It is read
once from the URL when the user opens a link, validated by :func:`videoattn_core.links.parse_link` (a value that is
unknown, malformed or impossible is dropped with a reason, shown on the page the link opened until another page is
entered), and pushed into the widgets; after that the widgets are the truth and every run writes the URL back with
:func:`videoattn_core.links.make_link`. The model part is remembered in the session, so switching pages keeps the
model.

A link is opened when a page is entered with a query string other than the one this session last wrote (the
session's first page, a page link of Compare or the Zoo), or when a run brings a query string this session has
never seen. A rerun of the same page with a query string the session wrote or opened before is no link: it is the
URL the browser had when the user acted, which lags runs behind when keys are pressed faster than runs end (read as
a link, it reset the widgets, an uploaded clip among them).

Results a page computed stay in the session under the inputs they were computed from (``st.session_state``, as the
Side by side page and the Run page's timeline keep theirs) until those inputs change. Where the model changes, a page
keeps each setting the new model has and replaces the others with a note saying what changed
(:func:`model_changed`); heavy views wait to be asked again.
"""

from __future__ import annotations

import threading

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import streamlit as st

import videoattn_core as vac
from pages._model_seed import seed_model_widgets
from videoattn_core.links import LinkState, make_link, parse_link

_WRITTEN = "_query_written"      # the query string this session last wrote
_MODEL = "_model_params"         # model part of the view state, shared by the pages
_IGNORED = "_ignored_messages"   # (page, messages): what the link that opened the page could not use, and why
_PAGE = "_last_page"             # the page of the session's last run
_SEEN = "_queries_seen"          # the last query strings this session opened or wrote (a browser may send any)
_SEEN_KEPT = 64


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
        st.Page("pages/zoo.py", title="Zoo", icon=":material/scatter_plot:", url_path="zoo"),
        st.Page("pages/side_by_side.py", title="Side by side", icon=":material/view_column:",
                url_path="side-by-side"),
        st.Page("pages/evaluation.py", title="Evaluation", icon=":material/fact_check:", url_path="evaluation"),
        st.Page("pages/home.py", title="Presets", icon=":material/list:", url_path="presets"),
    ]


_routing = threading.local()  # a script run is one thread: set while app.py's router runs this run's page


def run_router() -> None:
    """Run this script run's page through the app's navigation (app.py's body after the page config)."""
    _routing.active = True
    try:
        st.navigation(router_pages()).run()
    finally:
        _routing.active = False


def ensure_router() -> None:
    """Make sure a page runs through the router in ``app.py``.

    Because the app keeps its pages in ``pages/``, Streamlit starts every server in its pages-directory mode and,
    if the server's first visitor opens a page's own URL (a share link such as ``/attention?...``), runs that page
    file alone, with the files of ``pages/`` as navigation, until ``st.navigation`` has been called once (which
    ends that mode for the whole server). A page run that :func:`run_router` did not start calls it and runs again,
    now through the router, before it draws anything: once per session, when nothing the visitor did can be lost
    (after that the server has left that mode)."""
    if getattr(_routing, "active", False):
        return
    ss = st.session_state
    if not ss.get("_router_checked"):
        ss["_router_checked"] = True
        st.navigation(router_pages(), position="hidden")
        st.rerun()


def open_view(page: str, page_fields: Mapping[str, Callable[[str], Any]] | None = None, *,
              uses_model: bool = True) -> View:
    """Resolve this run's state: from an opened link, else from what this session remembers.

    ``uses_model=False`` (Compare): the page shows no single model, so a link to it leaves the session's model
    alone."""
    ensure_router()
    ss = st.session_state
    query = _query_dict()
    entering = ss.get(_PAGE) != page  # the session's first run, or another page before
    # on the same page the query string may be one this session wrote runs ago: not a link (module docstring)
    opened = bool(query) and query != ss.get(_WRITTEN) and (entering or query not in ss.get(_SEEN, []))
    if opened:
        params = query
    else:
        params = {**ss.get(_MODEL, {}), **ss.get(f"_page_params:{page}", {})}
    # a local model directory comes only from this session's own state, never from a link (see links.py)
    link = parse_link(params, page_fields=page_fields or {}, allow_paths=not opened)
    enter_page(page)
    view = View(link=link, opened=opened, page=page, entered=opened or entering)
    if opened:
        ss[_IGNORED] = (page, list(link.ignored))
        _written(query)
        ss[f"_page_params:{page}"] = {k: v for k, v in query.items() if k in (page_fields or {})}
        if uses_model:
            ss[_MODEL] = make_link(link.preset, link.config)
    elif entering:
        ss.pop(_IGNORED, None)  # the warning belongs to the link's page
    if uses_model:
        seed_model_widgets(view, link, overwrite=view.entered)
    return view


def _written(query: dict[str, str]) -> None:
    ss = st.session_state
    ss[_WRITTEN] = query
    seen = [q for q in ss.get(_SEEN, []) if q != query]
    ss[_SEEN] = [*seen[-(_SEEN_KEPT - 1):], query]


def enter_page(page: str) -> None:
    """Record the page of this run (pages without view state call it too, so that coming back counts as entering
    the page again: its widgets take the remembered state, a link's warning is gone)."""
    st.session_state[_PAGE] = page


def remembered(view: View, name: str) -> Any:
    """A page setting as this session last wrote it, before validation (None when the run opens a link): what
    a link cannot carry, such as ``clip=upload``, which coming back to the page keeps."""
    return None if view.opened else st.session_state.get(f"_page_params:{view.page}", {}).get(name)


def model_changed(view: View, model: Any) -> bool:
    """Whether this page last showed another model than ``model`` (any hashable token of it). False on the
    page's first showing and where a link opens it: there the settings are the link's, checked as such."""
    last = st.session_state.get(f"_shown_model:{view.page}")
    return not view.opened and last is not None and last != model


def model_shown(view: View, model: Any) -> None:
    """Record that the page has shown ``model`` with settings checked against it (call once the page is drawn:
    a run stopped earlier leaves the change to be handled by the next)."""
    st.session_state[f"_shown_model:{view.page}"] = model


def relabel(key: str, labels: tuple) -> None:
    """Call before a select box whose option labels depend on the model (``blocks.1.attn (space)``).

    A browser's select box holds its value as the label it shows and keeps it until the app sends another;
    Streamlit sends one only when the value changes. When the labels changed (another model) the value may well
    not have, so the box went on showing the old model's label and sent it back on the next run, where it
    matched no option and the box fell back to its default. Writing the value back sends the new label."""
    ss = st.session_state
    if key in ss and ss.get(f"_labels:{key}") not in (None, labels):
        ss[key] = ss[key]
    ss[f"_labels:{key}"] = labels


def settle(key: str, value: Any) -> None:
    """Give a widget ``value`` before it is drawn, writing only a change (a write moves the browser's widget,
    which must not undo the user's keys pressed since)."""
    if st.session_state.get(key) != value:
        st.session_state[key] = value


def keep_result(name: str, inputs: Any, result: Any) -> None:
    """Keep a page's result in the session with the inputs it was computed from (one per name)."""
    st.session_state[f"_result:{name}"] = (inputs, result)


def kept_result(name: str, inputs: Any) -> Any:
    """The kept result ``name`` while its inputs are ``inputs``, else None (and it is dropped)."""
    kept = st.session_state.get(f"_result:{name}")
    if kept is None or kept[0] != inputs:
        st.session_state.pop(f"_result:{name}", None)
        return None
    return kept[1]


def show_ignored() -> None:
    """Say which parameters of the opened link were ignored and why: on the page the link opened, until another
    page is entered."""
    page, messages = st.session_state.get(_IGNORED) or (None, [])
    if messages and page == st.session_state.get(_PAGE):
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
    _written(params)
    return urlencode(params)


def share_box(page_path: str, query: str) -> None:
    """The link to this view, ready to copy."""
    base = (st.context.url or "").rstrip("/")
    if base.endswith("/" + page_path):
        base = base[: -len(page_path) - 1]
    url = f"{base}/{page_path}?{query}" if page_path else f"{base}/?{query}"
    # a plain link, not st.code: the code block's highlighter is one more large script for the browser to start
    # on every page (measured: ~0.5-1 s of a first render on a 2-core machine)
    st.caption("Share this view (the link reproduces it):")
    st.markdown(f"[`{url}`]({url})")


def seed_page(view: View, widgets: Mapping[str, tuple[str, Any]], values: Mapping[str, Any] | None = None) -> None:
    """Give each page widget (key -> (link field, default)) its value from the view state (``values``, else the
    link's page state) when the page is entered, or when the widget has no value yet."""
    ss = st.session_state
    values = view.link.page if values is None else values
    for key, (name, default) in widgets.items():
        if view.entered or key not in ss:
            ss[key] = values.get(name, default)


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


def approved(page: str, token: Any) -> bool:
    """Whether the user pressed Run for exactly these settings (heavy forwards wait for the button)."""
    ss = st.session_state
    if st.button("Run", type="primary", key=f"{page}.run"):
        ss[f"{page}.approved"] = token
    return ss.get(f"{page}.approved") == token
