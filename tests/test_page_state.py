"""One state model for the pages (pages/_state.py), through Streamlit's AppTest: an uploaded clip and the user's
widget values survive reruns whose address bar lags behind (as a browser's does when keys are pressed faster than
the runs end); a link's warning belongs to the page the link opened; after a model change a layer, head or query
valid for the new model is kept, an invalid one replaced with a note, and every label names the new model's kinds;
heavy views (explanations, head statistics) wait to be asked again for a new model; the Run page's timeline stays
until its inputs change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from test_app import SMALL_TSF, array, assert_clean, charts, open_app, sidebar_widget
from videoattn_core.attention import explanations, head_stats

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CLIP = (ASSETS / "rotating_bar.mp4").read_bytes()
#: a small Video Swin (fast): the widget values a user would give swin3d_t after picking its family
SMALL_SWIN = {"num_frames": 8, "depths": "2,2,2,2", "img_size": 112}


def warnings(at) -> str:
    return "\n".join(w.value for w in at.warning)


def rerun_with_a_lagging_address_bar(at, older: dict):
    """Run as the browser does when the user acts before the last run's URL reached it: the rerun carries the
    query string of an earlier run. Returns the query string this run's browser would have had (for the next)."""
    current = dict(at.query_params)
    at.query_params.clear()
    at.query_params.update(older)
    at.run()
    return current


def upload_clip(at, page: str):
    at.radio(key=f"{page}.source").set_value("upload").run()
    at.file_uploader(key=f"{page}.upload").upload("clip.mp4", CLIP, "video/mp4")
    return at.run()


def assert_upload_kept(at, page: str):
    assert_clean(at)
    assert at.radio(key=f"{page}.source").value == "upload"
    assert any(c.value.startswith("uploaded clip:") for c in at.caption)
    assert "ignored" not in warnings(at)
    assert at.query_params["clip"] == "upload"


def shown_label(box, before: str | None = None) -> str:
    """The label a browser shows in a select box: the one the app sends (``set_value``), else the one it showed
    before (a select box keeps its label across runs), else the default option's on its first showing."""
    if box.proto.set_value:
        return box.proto.raw_value
    return before if before is not None else box.proto.options[box.proto.default]


# ------------------------------------------------------------------------------------------------ quick changes

def test_an_upload_and_the_slider_survive_quick_changes_on_the_run_page():
    at = open_app("run", **SMALL_TSF)
    older = dict(at.query_params)  # the address bar before the upload
    upload_clip(at, "run")
    assert_upload_kept(at, "run")
    for k in range(6, 11):  # five quick presses: each rerun carries the URL of the run before
        at.slider(key="run.topk").set_value(k)
        older = rerun_with_a_lagging_address_bar(at, older)
        assert_upload_kept(at, "run")
        assert at.slider(key="run.topk").value == k and at.query_params["topk"] == str(k)
    bars = next(c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    assert len(bars["data"][0]["y"]) == 10


def test_an_upload_and_the_sliders_survive_quick_changes_on_the_attention_page():
    at = open_app("attention", **SMALL_TSF, head="2")
    older = dict(at.query_params)
    upload_clip(at, "attention")
    assert_upload_kept(at, "attention")
    for frame in (1, 2, 3, 4, 5):
        at.slider(key="attention.frame").set_value(frame)
        older = rerun_with_a_lagging_address_bar(at, older)
        assert_upload_kept(at, "attention")
        assert at.slider(key="attention.frame").value == frame and at.query_params["frame"] == str(frame)
        assert at.selectbox(key="attention.head").value == 2


# ------------------------------------------------------------------------------------------------ link warnings

def test_a_links_warning_shows_on_its_page_and_leaves_with_it():
    at = open_app("run", **SMALL_TSF, clip="upload", topk="99")
    assert_clean(at)
    assert "clip='upload' ignored" in warnings(at) and "topk='99' ignored" in warnings(at)
    at.slider(key="run.topk").set_value(3).run()  # still the page the link opened
    assert "clip='upload' ignored" in warnings(at)
    for page in ("compare", "zoo", "model", "run"):  # the sidebar navigation: no query string
        at.query_params.clear()
        at.switch_page(f"pages/{page}.py").run()
        assert_clean(at)
        assert "ignored" not in warnings(at), page


# ------------------------------------------------------------------------------------------------ model changes

def test_a_layer_and_head_valid_for_the_new_model_are_kept_with_labels_of_the_new_model():
    at = open_app("attention", **SMALL_TSF, head="5")
    box = at.selectbox(key="attention.layer")
    assert box.value == "blocks.1.attn"
    label = shown_label(box)
    assert label == "blocks.1.attn (space)"
    sidebar_widget(at, "attention:hp.timesformer_base.attention_type").set_value("joint_space_time").run()
    assert_clean(at)
    box = at.selectbox(key="attention.layer")
    assert box.value == "blocks.1.attn" and box.options == ["blocks.0.attn (joint)", "blocks.1.attn (joint)"]
    assert shown_label(box, label) == "blocks.1.attn (joint)"  # not the divided model's "(space)"
    assert at.selectbox(key="attention.head").value == 5
    assert not at.warning  # nothing was replaced
    assert "kind **joint**" in " ".join(c.value for c in at.caption)
    assert at.query_params["attention_type"] == "joint_space_time" and at.query_params["head"] == "5"


def test_a_family_change_replaces_what_the_new_model_lacks_and_says_so():
    at = open_app("attention", **SMALL_TSF, layer="blocks.0.temporal_attn", head="11", query="6,1,3", frame="6")
    assert_clean(at) and not at.warning
    label = shown_label(at.selectbox(key="attention.layer"))
    for name, value in SMALL_SWIN.items():  # the user picks Video Swin, its first preset made small
        at.session_state[f"attention:hp.swin3d_t.{name}"] = value
    sidebar_widget(at, "attention:w.family").set_value("swin3d").run()
    assert_clean(at)
    notes = warnings(at)
    assert "layer blocks.0.temporal_attn is not in swin3d_t; showing layers.3.blocks.1.attn" in notes
    assert "query (6, 1, 3) is not on swin3d_t's 4×4×4 query grid of layers.3.blocks.1.attn; showing (3, 2, 2) " \
           "on frame 6" in notes, notes
    box = at.selectbox(key="attention.layer")
    assert box.value == "layers.3.blocks.1.attn"
    assert shown_label(box, label) == "layers.3.blocks.1.attn (window)"
    assert all(option.endswith("(window)") for option in box.options)
    assert at.selectbox(key="attention.head").value == 11  # its 24 heads include head 11: kept
    assert (at.slider(key="attention.qt").value, at.slider(key="attention.qy").value,
            at.slider(key="attention.qx").value) == (3, 2, 2)
    assert at.slider(key="attention.frame").value == 6
    assert at.query_params["model"] == "swin3d_t" and at.query_params["frame"] == "6"
    assert "query" not in at.query_params  # the shown frame's centre token is the default of a layer without CLS
    assert np.isfinite(frame_map(at)).any()  # the big map shows where the query looks
    # the notes said what changed once; the next change of the user keeps the values without notes
    at.slider(key="attention.frame").set_value(7).run()
    assert_clean(at)
    assert not at.warning and at.selectbox(key="attention.layer").value == "layers.3.blocks.1.attn"


def frame_map(at) -> np.ndarray:
    """The heat map of the big single-frame chart (its one heatmap trace)."""
    chart = charts(at)[0]
    return array(next(t for t in chart["data"] if t["type"] == "heatmap")["z"])


def test_the_default_query_is_a_token_on_the_shown_frame():
    """Swin windows of 2 token-frames: the centre token (t=2) attends to frames 4-7 only, so it would leave
    frame 0 empty."""
    at = open_app("attention", model="swin3d_t", num_frames="8", depths="2,2,2,2", img_size="112",
                  window_size="2,7,7", layer="layers.0.blocks.0.attn")
    assert_clean(at)
    assert at.slider(key="attention.frame").value == 0 and at.slider(key="attention.qt").value == 0
    assert np.isfinite(frame_map(at)).any()
    assert "query" not in at.query_params  # the default travels as no parameter
    at.slider(key="attention.frame").set_value(5).run()  # the user's own choices are left as they are
    assert at.slider(key="attention.qt").value == 0 and not at.warning


# ------------------------------------------------------------------------------------------------ heavy views

def test_explanations_and_head_statistics_wait_for_the_user_after_a_model_change(monkeypatch):
    explained, statistics = [], []
    explain, head_statistics = explanations.explain, head_stats.head_statistics
    monkeypatch.setattr(explanations, "explain", lambda model, *a, **k: explained.append(len(model.blocks))
                        or explain(model, *a, **k))
    monkeypatch.setattr(head_stats, "head_statistics", lambda model, *a, **k: statistics.append(len(model.blocks))
                        or head_statistics(model, *a, **k))
    st.cache_resource.clear()
    at = open_app("attention", **SMALL_TSF, explain="relevance", headstats="on")
    assert_clean(at)
    assert explained == [2] and statistics == [2]
    assert any(c.get("frames") for c in charts(at))
    sidebar_widget(at, "attention:hp.timesformer_base.depth").set_value(1).run()  # another model
    assert_clean(at)
    assert explained == [2] and statistics == [2]  # nothing heavy ran for the new model
    assert at.radio(key="attention.explain").value == "off" and at.radio(key="attention.headstats").value == "off"
    assert "explain" not in at.query_params and "headstats" not in at.query_params
    said = " ".join(i.value for i in at.info)
    assert "relevance" in said and "head statistics" in said and "turned off" in said
    assert not any(c.get("frames") for c in charts(at))
    at.radio(key="attention.explain").set_value("relevance").run()  # on demand, for the current model
    assert_clean(at)
    assert explained == [2, 1] and any(c.get("frames") for c in charts(at))
    at.radio(key="attention.headstats").set_value("on").run()
    assert_clean(at)
    assert statistics == [2, 1] and at.query_params["headstats"] == "on"
    at.selectbox(key="attention.head").set_value(0).run()  # an unrelated change keeps them on
    assert at.radio(key="attention.explain").value == "relevance" and at.radio(key="attention.headstats").value == "on"
    st.cache_resource.clear()


# ------------------------------------------------------------------------------------------------ page results

def timeline_charts(at) -> list[dict]:
    return [c for c in charts(at) if "windows" in str(c["layout"].get("title", {}).get("text", ""))]


def test_the_timeline_stays_until_its_inputs_change():
    at = open_app("run", **SMALL_TSF, topk="3")
    assert not timeline_charts(at)
    at.button(key="run.timeline").click().run()
    assert_clean(at)
    shown = timeline_charts(at)
    assert len(shown) == 1
    at.slider(key="run.topk").set_value(4).run()  # not one of its inputs
    assert_clean(at)
    assert timeline_charts(at) == shown
    at.number_input(key="run.stride").set_value(1.0).run()  # its window step
    assert_clean(at)
    assert not timeline_charts(at)
    at.button(key="run.timeline").click().run()
    assert len(timeline_charts(at)) == 1
    at.selectbox(key="run.clip").set_value("rotating_bar").run()  # its clip
    assert_clean(at)
    assert not timeline_charts(at)
