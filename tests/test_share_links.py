"""Share links written before the pages were restructured keep opening the same views: each link of this list is
opened in a fresh session, the page must render without an exception, show what the link asks for, write the same
link back, and say which tampered values it ignored."""

from __future__ import annotations

import pytest

import videoattn_core as vac
from test_app import assert_clean, metric, open_app

SMALL = {"model": "timesformer_base", "depth": "2", "img_size": "64"}

# (page, query parameters, what the page must show: a metric's value, warnings' fragments)
LINKS = [
    (None, {"model": "mvit_v2_s"}, {"parameters": "34,537,744"}, []),
    (None, {"model": "timesformer_base", "attention_type": "joint_space_time", "search": "attn",
            "breakdown": "macs"}, {"parameters": f"{vac.summarize('timesformer_base', attention_type='joint_space_time').params:,}"}, []),
    (None, {"model": "videomae_base"}, {"parameters": "86,534,800"}, []),
    (None, {"model": "timesformer_base", "embed_dim": "64", "num_heads": "4"}, {}, []),  # valid only together
    ("run", {**SMALL, "topk": "3", "clip": "rotating_bar"}, {}, []),
    ("run", {**SMALL, "views": "protocol"}, {}, []),
    ("attention", {**SMALL, "layer": "blocks.1.temporal_attn", "head": "2", "query": "3,1,1", "frame": "2"}, {}, []),
    ("compare", {"c1": "timesformer_base;depth=1", "c2": "mvit_v2_s;num_frames=8", "n": "2"}, {}, []),
    ("home", {}, {}, []),
    # tampered
    (None, {"model": "no_such_model"}, {}, ["model='no_such_model' ignored"]),
    (None, {"model": "timesformer_base", "depth": "-3", "hack": "1"}, {}, ["depth='-3' ignored", "hack='1' ignored"]),
    ("run", {**SMALL, "clip": "../../etc/passwd", "weights": "upload", "topk": "99"},
     {}, ["clip='../../etc/passwd' ignored", "weights='upload' ignored", "topk='99' ignored"]),
    ("attention", {**SMALL, "layer": "zzz", "head": "99", "query": "x"}, {}, ["query='x' ignored"]),
    ("compare", {"c1": "no_such_model;x=1", "n": "9"}, {}, ["c1=", "n='9' ignored"]),
]


@pytest.mark.parametrize("page,params,metrics,ignored", LINKS,
                         ids=[f"{p or 'model'}-{i}" for i, (p, *_) in enumerate(LINKS)])
def test_old_links_open_the_same_views(page, params, metrics, ignored):
    at = open_app(page, **params)
    assert_clean(at)
    for label, value in metrics.items():
        assert metric(at, label) == value
    warnings = " ".join(w.value for w in at.warning)
    for fragment in ignored:
        assert fragment in warnings, warnings
    if not ignored and page != "home":
        # the page writes back the link it was opened with (defaults it filled in may be added, none dropped)
        assert {k: v for k, v in at.query_params.items() if k in params} == params, at.query_params


@pytest.mark.parametrize("page, key", [("run", "run.clip"), ("attention", "attention.clip"),
                                       ("side_by_side", "side.clip")])
def test_a_link_to_big_buck_bunny_round_trips(page, key):
    """Picking the real sample puts it in the link (Side by side leaves its default out); that link, opened in a
    fresh session, shows the same clip and writes back the same link."""
    params = SMALL if page != "side_by_side" else {}
    at = open_app(page, **params, clip="rotating_bar")
    assert_clean(at)
    at.selectbox(key=key).set_value("big_buck_bunny").run()
    assert_clean(at)
    link = dict(at.query_params)
    assert link.get("clip") == (None if page == "side_by_side" else "big_buck_bunny")
    again = open_app(page, **{**link, "clip": "big_buck_bunny"})
    assert_clean(again)
    assert again.selectbox(key=key).value == "big_buck_bunny"
    assert not [w.value for w in again.warning if "ignored" in w.value]
    assert dict(again.query_params) == link
