"""The Attention page's Explain view and head statistics through Streamlit's AppTest: the head statistics shown
are the library's for the page's model and clip, their switch travels in the link, and the explanation is
computed once per (model, clip, method, class, layer), not on every rerun."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from test_app import SMALL_TSF, array, assert_clean, charts, open_app
from videoattn_core.attention import explanations
from videoattn_core import figures
from videoattn_core.run import runtime
from videoattn_core.attention.head_stats import head_statistics

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_CLIP = ASSETS / "big_buck_bunny.mp4"  # the sample clip a link without clip= shows


def _library_input(overrides: dict):
    """The page's pipeline in the library: seed-0 weights, the sample clip's first view, CPU."""
    plan = runtime.plan_run("timesformer_base", DEFAULT_CLIP, overrides=overrides, device="cpu", estimate=False)
    model = runtime.build_seeded(plan.config, 0).eval()
    return model, runtime.load_inputs(plan, DEFAULT_CLIP).tensor[:1]


def _head_statistics_chart(at):
    found = [c for c in charts(at) if c["layout"].get("title", {}).get("text") == "every head × layer"]
    assert len(found) == 1, [c["layout"].get("title") for c in charts(at)]
    return found[0]


def test_head_statistics_are_the_librarys_and_travel_in_the_link():
    at = open_app("attention", **SMALL_TSF)
    assert_clean(at)
    assert at.radio(key="attention.headstats").value == "off" and "headstats" not in at.query_params
    assert not [c for c in charts(at) if c["layout"].get("title", {}).get("text") == "every head × layer"]

    at = open_app("attention", **SMALL_TSF, headstats="on")
    assert_clean(at)
    assert at.radio(key="attention.headstats").value == "on" and at.query_params["headstats"] == "on"
    expected = head_statistics(*_library_input({"depth": 2, "img_size": 64}))
    chart = _head_statistics_chart(at)
    heads = expected.entropy.shape[1]
    assert len(chart["data"]) == len(figures.HEAD_STATISTICS) * heads  # one trace per head in each panel
    for panel, key in enumerate(figures.HEAD_STATISTICS):
        for h in range(heads):
            trace = chart["data"][panel * heads + h]
            assert trace["name"] == f"head {h}" and trace["customdata"] == expected.layers
            shown = np.array([np.nan if v is None else v for v in array(trace["y"]).tolist()], dtype=float)
            np.testing.assert_allclose(shown, getattr(expected, key)[:, h], rtol=1e-6, equal_nan=True,
                                       err_msg=f"{key}, head {h}")

    at.radio(key="attention.headstats").set_value("off").run()
    assert_clean(at)
    assert "headstats" not in at.query_params


def test_explanation_is_computed_once_per_class(monkeypatch):
    calls = []
    real = explanations.explain

    def counting(*args, **kwargs):
        calls.append((kwargs.get("method"), kwargs.get("target")))
        return real(*args, **kwargs)

    monkeypatch.setattr(explanations, "explain", counting)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = open_app("attention", **SMALL_TSF, explain="relevance")
    assert_clean(at)
    target = at.selectbox(key="attention.target").value
    assert calls == [("relevance", target)]
    at.selectbox(key="attention.head").set_value(0).run()  # a rerun that does not touch the explanation
    at.slider(key="attention.frame").set_value(2).run()
    assert_clean(at)
    assert calls == [("relevance", target)]
    shown = next(c for c in charts(at) if c.get("frames"))

    model, x = _library_input({"depth": 2, "img_size": 64})
    top = [p["index"] for p in runtime.top_predictions(runtime.classify(model, x), [], 5)]
    assert target == top[0]
    at.selectbox(key="attention.target").set_value(top[1]).run()  # the second most probable class
    assert_clean(at)
    assert calls == [("relevance", top[0]), ("relevance", top[1])]
    changed = next(c for c in charts(at) if c.get("frames"))
    assert not np.allclose(array(shown["data"][1]["z"]), array(changed["data"][1]["z"]))
