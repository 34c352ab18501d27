"""A status box that meets an error says so: "failed while <step>" in the error state, the error's message below
it (Run and Attention pages; Side by side in test_side_by_side.py), never the label of the step it stopped on."""

from __future__ import annotations

import pytest
import streamlit as st

import videoattn_core as vac
from test_app import assert_clean, open_app
from videoattn_core.run import runtime

SMALL = {"model": "timesformer_base", "depth": "1", "img_size": "32", "patch_size": "8"}


@pytest.fixture
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def failed_status(at):
    assert len(at.status) == 1
    return at.status[0]


def test_run_page_status_says_the_model_failed_to_build(monkeypatch, fresh_caches):
    def broken(plan, **kwargs):
        raise vac.CheckpointError("the checkpoint has no tensor named blocks.0.attn.qkv.weight")

    monkeypatch.setattr(runtime, "load_model", broken)
    at = open_app("run", **SMALL)
    assert_clean(at)
    status = failed_status(at)
    assert (status.state, status.label) == ("error", "failed while building the model")
    assert [e.value for e in at.error] == ["the checkpoint has no tensor named blocks.0.attn.qkv.weight"]


def test_attention_page_status_says_the_clip_failed_to_decode(monkeypatch, fresh_caches):
    def broken(plan, clip, **kwargs):
        raise vac.VideoError("rotating_bar.mp4 is corrupt or truncated: decoding failed after 0 frames")

    monkeypatch.setattr(runtime, "load_inputs", broken)
    at = open_app("attention", **SMALL, clip="rotating_bar")
    assert_clean(at)
    status = failed_status(at)
    assert (status.state, status.label) == ("error", "failed while decoding the clip")
    assert any("decoding failed after 0 frames" in e.value for e in at.error)


def test_a_run_that_succeeds_ends_complete(fresh_caches):
    at = open_app("run", **SMALL, clip="rotating_bar")
    assert_clean(at)
    status = failed_status(at)
    assert status.state == "complete" and status.label.startswith("done: forward in")
