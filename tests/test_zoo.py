"""The published zoo and one clip through several models: points against the catalog and the papers' cost tables,
the Pareto frontier against its definition, and the Zoo and Side-by-side pages (AppTest) against the library."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
import streamlit as st

import videoattn_core as vac
from test_app import array, assert_clean, charts, open_app
from test_runtime import ENTRY, TINY, checkpoint, entry  # noqa: F401  (fixtures: a tiny catalog entry served locally)
from videoattn_core.cost import memory, zoo
from videoattn_core.run import side_by_side, timing
from videoattn_core.attention import explanations
from videoattn_core.run import runtime
from videoattn_core.weights import lookup as W
from videoattn_core.figures import token_time_index

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"

#: published cost of the test protocol: GMACs per view (the papers' "GFLOPs") and views (clips × crops)
PUBLISHED = {
    # TimeSformer paper (Bertasius et al. 2021), Table 1/2: 0.59, 5.11, 7.14 TFLOPs for 3 views (1 clip × 3 crops)
    "timesformer_base.official_k400": (590 / 3, 3),
    "timesformer_hr.official_k400": (5110 / 3, 3),
    "timesformer_l.official_k400": (7140 / 3, 3),
    # MViT (Fan et al. 2021) Table 2 and MViTv2 (Li et al. 2022) Table 5: GFLOPs × 1 crop × 5 clips
    "mvit_v1_b.official_k400": (70.5, 5),
    "mvit_v1_b_32x3.official_k400": (170, 5),
    "mvit_v2_s.official_k400": (64, 5),
    "mvit_v2_b.official_k400": (225, 5),
    # torchvision's MViT weights: GFLOPS of the weights' meta, clips_per_video=5
    "mvit_v1_b.torchvision_k400": (70.599, 5),
    "mvit_v2_s.torchvision_k400": (64.224, 5),
    # Video Swin (Liu et al. 2022) Table 1 (Kinetics-400, 4 clips × 3 crops) and Table 3 (SSv2, 1 × 3)
    "swin3d_t.official_k400": (88, 12),
    "swin3d_s.official_k400": (166, 12),
    "swin3d_b.official_k400": (282, 12),
    "swin3d_b.official_ssv2": (321, 3),
    # VideoMAE (Tong et al. 2022) Tables 6 and 7: Kinetics-400 5 clips × 3 crops, SSv2 2 × 3
    "videomae_s.official_k400": (57, 15),
    "videomae_base.official_k400": (180, 15),
    "videomae_l.official_k400": (597, 15),
    "videomae_h.official_k400": (1192, 15),
    "videomae_base.official_ssv2": (180, 6),
    # ViViT (Arnab et al. 2021): ViViT-B/16x2 model 1, 455.2 GFLOPs per view, 4 clips × 3 crops
    "vivit_b.hf_k400": (455.2, 12),
}
#: the papers print their counts rounded to 3 significant digits (and count a few layers differently)
COST_RTOL = 0.015


@functools.cache
def catalog_points(dataset: str) -> tuple:
    return tuple(zoo.points(dataset))


def dominated(p, others, cost) -> bool:
    """Pareto dominance as defined: another point costs no more and scores no less, one of them strictly."""
    return any(cost[q.name] <= cost[p.name] and q.top1 >= p.top1
               and (cost[q.name] < cost[p.name] or q.top1 > p.top1) for q in others)


# ------------------------------------------------------------------------------------------------ core

def test_points_are_the_catalog_entries_with_their_published_top1_and_protocol():
    every = []
    for dataset in zoo.datasets():
        pts = catalog_points(dataset)
        expected = [e for e in W.CATALOG.values() if e.dataset == dataset]
        assert [p.name for p in pts] == [e.name for e in expected]
        for p, e in zip(pts, expected):
            assert p.top1 == e.metrics["acc@1"] and p.top5 == e.metrics.get("acc@5")
            assert (p.clips, p.crops) == (e.recipe.clips, e.recipe.crops)
            assert f"{e.recipe.clips} clip" in p.protocol and f"{e.recipe.crop} px crop" in p.protocol
            assert p.metrics_protocol == e.metrics_protocol and p.page == e.page
        every += pts
    assert sorted(p.name for p in every) == sorted(W.CATALOG)  # every family, every dataset


def test_each_entry_builds_the_network_its_recipe_reads():
    """The MACs are counted on the config the checkpoint fits: its input must be the recipe's frames and crop."""
    for e in W.CATALOG.values():
        shape = W.entry_config(e).input_shape()
        assert (shape[2], shape[-1]) == (e.recipe.num_frames, e.recipe.crop), e.name


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_costs_reproduce_the_published_gflops_and_views(name):
    gmacs, views = PUBLISHED[name]
    p = zoo.point_of(name)
    assert p.views == views
    assert p.macs_per_view / 1e9 == pytest.approx(gmacs, rel=COST_RTOL)
    assert p.macs == p.macs_per_view * views


def test_torchvision_swin_gflops_are_for_16_frames_not_the_32_it_evaluates():
    """torchvision's Swin3D weights print the GFLOPS of a 16-frame clip while their recipe reads 32 frames: the
    zoo counts the 32 frames the published accuracy was measured with."""
    for name in ("swin3d_t.torchvision_k400", "swin3d_s.torchvision_k400", "swin3d_b.torchvision_k400"):
        e, p = W.CATALOG[name], zoo.point_of(name)
        assert e.recipe.num_frames == 32
        assert p.macs_per_view / 1e9 == pytest.approx(2 * e.gflops, rel=0.01)
        assert vac.summarize(W.entry_config(e), frames=16).macs / 1e9 == pytest.approx(e.gflops, rel=0.01)
        assert "16-frame clip" in e.notes and "32 frames" in e.notes  # the entry says so where the figure is


@pytest.mark.parametrize("cost", ["macs", "params"])
def test_pareto_front_of_the_catalog_is_every_undominated_entry(cost):
    for dataset in zoo.datasets():
        pts = catalog_points(dataset)
        costs = {p.name: p.cost(cost) for p in pts}
        front = zoo.pareto_front([(p.name, costs[p.name], p.top1) for p in pts])
        assert set(front) == {p.name for p in pts if not dominated(p, pts, costs)}, dataset
        assert [costs[n] for n in front] == sorted(costs[n] for n in front)


def test_pareto_front_ties_and_missing_costs():
    values = [("a", 1.0, 70.0), ("b", 1.0, 70.0), ("c", 2.0, 70.0), ("d", 2.0, 80.0), ("e", None, 99.0),
              ("f", 0.5, 60.0), ("g", 3.0, 79.0)]
    assert zoo.pareto_front(values) == ["f", "a", "b", "d"]


def test_measured_seconds_refuses_before_building_and_scales_by_views():
    pts = zoo.points("diving48")
    built = []

    def measure(config, device, dtype):
        built.append(config)
        return {"time_s": 0.5}

    seconds, refused = timing.measured_seconds(pts, measure=measure,
                                            check=lambda p: "too big" if "vitg" in p.name else None)
    assert list(refused) == ["vjepa2_vitg_384_diving48.hf_diving48"]
    assert built == [W.entry_config("vjepa2_vitl_diving48.hf_diving48")]
    assert pts[0].cost("time", seconds) == 0.5 * pts[0].views and pts[1].cost("time", seconds) is None


def test_common_moments_and_nearest_frames():
    a = [0, 30, 60, 91, 121, 151, 182, 212]  # 8 frames every 30
    b = [31, 93, 155, 218]  # 4 uniform segments
    moments = side_by_side.common_moments([a, b], 3)
    assert moments == [31, 122, 212]  # the span both cover
    assert side_by_side.nearest_frames(a, moments) == [1, 4, 7] and side_by_side.nearest_frames(b, moments) == [0, 1, 3]
    assert side_by_side.common_moments([[0, 10], [20, 30]], 2) == [0, 30]  # disjoint: the whole span


# ------------------------------------------------------------------------------------------------ Zoo page

def zoo_traces(at):
    chart = next(c for c in charts(at) if any(t.get("name") == "Pareto frontier" for t in c["data"]))
    points = {}
    for t in chart["data"]:
        if t.get("name") != "Pareto frontier":
            for name, x, y in zip(t["ids"], array(t["x"]), array(t["y"])):
                points[name] = (t["name"], float(x), float(y))
    front = next(t for t in chart["data"] if t.get("name") == "Pareto frontier")
    return chart, points, list(front["ids"])


def library_point(e):
    """An entry's point computed from the library's public API, not through videoattn_core.cost.zoo."""
    config = vac.get_config(e.preset, **e.overrides)
    return config.family, vac.summarize(config), e.recipe.clips * e.recipe.crops


def test_zoo_page_draws_every_entry_of_the_dataset_with_the_frontier():
    at = open_app("zoo")
    assert_clean(at)
    chart, points, front = zoo_traces(at)
    expected = {e.name: e for e in W.CATALOG.values() if e.dataset == "kinetics400"}
    assert set(points) == set(expected)
    costs = {}
    for name, e in expected.items():
        family, summary, views = library_point(e)
        assert points[name] == (family, summary.macs * views, e.metrics["acc@1"]), name
        costs[name] = summary.macs * views
    pts = [type("P", (), {"name": n, "top1": e.metrics["acc@1"]}) for n, e in expected.items()]
    assert set(front) == {p.name for p in pts if not dominated(p, pts, costs)}
    assert chart["layout"]["xaxis"]["type"] == "log"
    # the table states the protocol of each number; the best entry is chosen below, with links to open it
    table = at.dataframe[0].value
    assert set(table["entry"]) == set(expected)
    assert all("view" in text and "px crop" in text for text in table["protocol"])
    best = max(expected.values(), key=lambda e: e.metrics["acc@1"])
    assert at.selectbox(key="zoo.entry").value == best.name
    links = {link.proto.page: parse_qs(link.proto.query_string) for link in at.get("page_link")}
    assert links["run"] == {"model": [best.preset], "weights": [best.name]}
    assert links[""]["model"] == [best.preset]


def test_zoo_link_round_trips_dataset_cost_and_entry():
    at = open_app("zoo", dataset="ssv2", cost="params", entry="swin3d_b.official_ssv2")
    assert_clean(at)
    _, points, _ = zoo_traces(at)
    e = W.CATALOG["swin3d_b.official_ssv2"]
    assert points[e.name][1] == vac.summarize(vac.get_config(e.preset, **e.overrides)).params
    assert at.selectbox(key="zoo.entry").value == e.name
    links = {link.proto.page: parse_qs(link.proto.query_string) for link in at.get("page_link")}
    # the Model page (the default page: its path is "") builds the network this checkpoint fits (SSv2's 174 classes, its 16×7×7 window)
    assert links[""] == {"model": ["swin3d_b"], "num_classes": ["174"], "window_size": ["16,7,7"]}
    assert dict(at.query_params) == {"dataset": "ssv2", "cost": "params", "entry": e.name}
    bad = open_app("zoo", dataset="imagenet", cost="speed")
    assert_clean(bad)
    assert "dataset must be one of" in bad.warning[0].value and "cost must be one of" in bad.warning[0].value


def test_zoo_measured_time_on_request_refuses_what_does_not_fit(monkeypatch):
    st.cache_data.clear()
    built = []

    def fake_measure(config, device="cpu", dtype="float32"):  # stands for the forward: its result is plotted as is
        built.append(config)
        return {"time_s": config.num_frames / 1000, "peak_bytes": 0.0, "baseline_bytes": 0.0}

    monkeypatch.setattr(timing, "measure_forward", fake_measure)
    monkeypatch.setattr(memory, "available_memory", lambda device: 3 * 2**30)  # 3 GiB free: ViT-L fits, ViT-g does not
    monkeypatch.setattr(memory, "pin_allocator", lambda: True)  # a plan near the limit pins it: not this process
    at = open_app("zoo", dataset="diving48", cost="time")
    assert_clean(at)
    assert not built and any("Press the button" in i.value for i in at.info)
    at.button(key="zoo.measure").click()
    at.run()
    assert_clean(at)
    assert built == [W.entry_config("vjepa2_vitl_diving48.hf_diving48")]
    assert any(w.value.startswith("vjepa2_vitg_384_diving48.hf_diving48: Refused before allocating anything")
               for w in at.warning)
    _, points, front = zoo_traces(at)
    views = W.CATALOG["vjepa2_vitl_diving48.hf_diving48"].recipe.clips * 3
    assert points == {"vjepa2_vitl_diving48.hf_diving48": ("vjepa2", pytest.approx(32 / 1000 * views), 89.0)}
    assert front == ["vjepa2_vitl_diving48.hf_diving48"]
    st.cache_data.clear()


# ------------------------------------------------------------------------------------------------ Side by side

SMALL = {"m1": "timesformer_base;depth=2;img_size=64", "m2": "mvit_v2_s;depths=1,1,1,1;num_frames=4;img_size=64"}


def side_rows(at):
    """Per model row: the top-k bars (labels and probabilities, best first) and the map's heatmaps."""
    specs = charts(at)
    bars = [c for c in specs if c["data"][0]["type"] == "bar"]
    maps = [c for c in specs if any(t["type"] == "heatmap" for t in c["data"])]
    return ([(list(b["data"][0]["y"])[::-1], array(b["data"][0]["x"])[::-1].tolist()) for b in bars],
            [[array(t["z"]) for t in m["data"] if t["type"] == "heatmap"] for m in maps])


def library_explanation(preset, overrides, clip, method, weights=None):
    """The library's prediction (``vac.predict``) and explanation of its top class on the same input."""
    prediction = vac.predict(preset, clip, overrides=overrides, weights=weights, device="cpu", top_k=3)
    plan = runtime.plan_run(preset, weights=weights, overrides=overrides, device="cpu", estimate=False)
    model = runtime.load_model(plan).model
    x = runtime.load_inputs(plan, clip).tensor[:1]
    explained = explanations.explain(model, x, target=prediction.predictions[0]["index"], method=method)
    return prediction, explained


def overrides_of(spec):
    preset, *pairs = spec.split(";")
    return preset, vac.links.spec_config(preset, pairs).diff(vac.get_preset(preset).config)


def test_side_by_side_predictions_equal_vac_predict_and_maps_equal_vac_explain():
    at = open_app("side_by_side", **SMALL, clip="rotating_bar", topk="3", frames="3")
    assert_clean(at)
    bars, maps = side_rows(at)
    assert len(bars) == 2 and len(maps) == 2
    clip = ASSETS / "rotating_bar.mp4"
    library = [library_explanation(*overrides_of(SMALL[slot]), clip, "relevance") for slot in ("m1", "m2")]
    for shown, (prediction, _) in zip(bars, library):
        assert prediction.random_init
        assert shown == ([p["label"] for p in prediction.predictions],
                         [p["probability"] for p in prediction.predictions])
    # the same moments for both models (the span both cover), each model's distinct input frames nearest to them
    indices = [prediction.clip["sampled_indices"] for prediction, _ in library]
    moments = side_by_side.common_moments(indices, 3)
    assert len(moments) == 3
    for shown_maps, ix, (_, explained) in zip(maps, indices, library):
        tokens = explained.tokens
        picks = side_by_side.frames_at_moments(ix, moments).positions
        assert len(set(picks)) == 3  # never one input frame for two moments
        expected = [tokens[token_time_index(f, len(ix), tokens.shape[0])] for f in picks]
        assert len(shown_maps) == 3
        for shown, want in zip(shown_maps, expected):
            np.testing.assert_allclose(shown, want, rtol=1e-5, atol=1e-7)
    assert dict(at.query_params) == {"m1": "timesformer_base;img_size=64;depth=2",
                                     "m2": "mvit_v2_s;num_frames=4;img_size=64;depths=1,1,1,1",
                                     "clip": "rotating_bar", "topk": "3", "frames": "3"}


def test_side_by_side_in_bfloat16_shows_what_vac_predict_gives_in_bfloat16():
    at = open_app("side_by_side", **SMALL, clip="rotating_bar", topk="3", dtype="bfloat16")
    assert_clean(at)
    assert any("(bfloat16)" in c.value for c in at.caption)
    bars, maps = side_rows(at)
    assert len(bars) == 2 and all(np.isfinite(z).all() for m in maps for z in m)
    for shown, slot in zip(bars, ("m1", "m2")):
        preset, overrides = overrides_of(SMALL[slot])
        prediction = vac.predict(preset, ASSETS / "rotating_bar.mp4", overrides=overrides, device="cpu",
                                 dtype="bfloat16", top_k=3)
        float32 = vac.predict(preset, ASSETS / "rotating_bar.mp4", overrides=overrides, device="cpu", top_k=3)
        probabilities = [p["probability"] for p in prediction.predictions]
        assert shown == ([p["label"] for p in prediction.predictions], probabilities)
        assert probabilities != [p["probability"] for p in float32.predictions]
    assert at.query_params["dtype"] == "bfloat16"


def test_side_by_side_with_a_catalog_entry_and_the_link_round_trip(entry):
    params = {"m1": "timesformer_base", "w1": ENTRY, "m2": SMALL["m2"], "clip": "moving_square", "topk": "3",
              "method": "rollout"}
    at = open_app("side_by_side", **params)
    assert_clean(at)
    bars, maps = side_rows(at)
    expected = vac.predict("timesformer_base", ASSETS / "moving_square.mp4", weights=ENTRY, device="cpu", top_k=3)
    assert not expected.random_init
    assert bars[0] == ([p["label"] for p in expected.predictions], [p["probability"] for p in expected.predictions])
    assert at.selectbox(key="side.m1.weights").value == ENTRY
    assert at.query_params["w1"] == ENTRY and at.query_params["method"] == "rollout"
    # an upload cannot travel: whoever opens the link gets the sample clip, and is told
    again = open_app("side_by_side", **{**params, "clip": "upload", "w2": "swin3d_t.torchvision_k400"})
    assert_clean(again)
    assert "uploaded clip cannot travel in a link" in again.warning[0].value
    assert any("swin3d_t.torchvision_k400 are not for mvit_v2_s" in w.value for w in again.warning)
    assert again.selectbox(key="side.clip").value == "big_buck_bunny"  # the default sample


def test_side_by_side_refuses_a_selection_that_does_not_fit_before_building_anything(monkeypatch):
    built = []
    monkeypatch.setattr(side_by_side, "run_on_clip", lambda *a, **k: built.append(a) or pytest.fail("a model was built"))
    monkeypatch.setattr(runtime, "load_model", lambda *a, **k: built.append(a) or pytest.fail("a model was built"))
    at = open_app("side_by_side", m1="timesformer_base;depth=1;img_size=32;patch_size=8",
                  m2="timesformer_base;num_frames=512;img_size=4096")
    assert_clean(at)
    refusal = [e.value for e in at.error if "does not fit" in e.value]
    assert refusal and refusal[0].startswith("Model 2. timesformer_base;") and "Refused before allocating" in refusal[0]
    assert not built and not charts(at)
