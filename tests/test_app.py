"""App pages through Streamlit's AppTest: each page renders without an exception, widgets change the numbers,
invalid values give the inline message, and the query parameters round-trip."""

import base64
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import videoattn_core as vac
from videoattn_core import figures
from videoattn_core.run import devices

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SMALL_TSF = {"model": "timesformer_base", "depth": "2", "img_size": "64"}  # 4×4 patches, 2 blocks: fast
DEFAULT_CLIP = "big_buck_bunny"  # the sample clip a link without clip= shows (assets/README.md)


def open_app(page: str | None = None, **params: str) -> AppTest:
    """The app as a fresh browser opening ``/<page>?<params>`` would see it."""
    at = AppTest.from_file(APP, default_timeout=240)
    if page is not None:
        at.run()
        at.switch_page(f"pages/{page}.py")
    at.query_params.clear()
    at.query_params.update(params)
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def array(value) -> np.ndarray:
    """A figure's array as plotly serialises it (a list, or a typed array: dtype, base64 bdata, shape)."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(n) for n in str(value.get("shape", len(data))).split(",")]
        return data.reshape(shape)
    return np.asarray(value, dtype=float)


def sidebar_widget(at: AppTest, key: str):
    for kind in ("slider", "number_input", "selectbox", "text_input", "checkbox"):
        for widget in getattr(at.sidebar, kind):
            if widget.key == key:
                return widget
    raise KeyError(key)


# ------------------------------------------------------------------------------------------------ Model page

def test_model_link_shows_mvit_v2_s_with_its_parameter_count():
    at = open_app(model="mvit_v2_s")
    assert_clean(at)
    expected = vac.summarize("mvit_v2_s")
    assert metric(at, "parameters") == f"{expected.params:,}"
    assert sidebar_widget(at, "model:w.preset").value == "mvit_v2_s"
    # one section at a time, the layer table first: no chart is computed or sent with it
    assert len(at.dataframe[0].value) == len(expected.layers)
    assert not charts(at)
    assert at.query_params == {"model": "mvit_v2_s"}
    # the breakdown charts, then both growth curves, each written into the link; the numbers stay
    at.button_group(key="model.section").set_value("cost").run()
    assert_clean(at)
    assert [c["data"][0]["type"] for c in charts(at)] == ["sunburst", "bar"] and not at.dataframe
    assert at.query_params == {"model": "mvit_v2_s", "section": "cost"}
    at.button_group(key="model.section").set_value("growth").run()
    assert_clean(at)
    assert [c["data"][0]["type"] for c in charts(at)] == ["scatter", "scatter"]
    assert at.query_params == {"model": "mvit_v2_s", "section": "growth"}
    assert metric(at, "parameters") == f"{expected.params:,}"
    assert open_app(**at.query_params).button_group(key="model.section").value == "growth"


def test_model_widget_changes_the_numbers_and_the_link():
    at = open_app(model="timesformer_base")
    before = vac.summarize("timesformer_base")
    assert metric(at, "MACs per view") == figures.human(before.macs)
    sidebar_widget(at, "model:hp.timesformer_base.num_frames").set_value(16)
    at.run()
    assert_clean(at)
    after = vac.summarize("timesformer_base", num_frames=16)
    assert after.macs > 2 * before.macs * 0.9
    assert metric(at, "MACs per view") == figures.human(after.macs)
    assert at.query_params == {"model": "timesformer_base", "num_frames": "16"}
    sidebar_widget(at, "model:hp.timesformer_base.attention_type").set_value("joint_space_time")
    at.run()
    joint = vac.summarize("timesformer_base", num_frames=16, attention_type="joint_space_time")
    assert metric(at, "MACs per view") == figures.human(joint.macs)
    assert at.query_params["attention_type"] == "joint_space_time"


def test_model_invalid_combination_is_shown_inline_not_as_a_traceback():
    at = open_app(model="timesformer_base")
    sidebar_widget(at, "model:hp.timesformer_base.num_heads").set_value(5)
    at.run()
    assert_clean(at)
    with pytest.raises(vac.ConfigError) as exc:
        vac.get_config("timesformer_base", num_heads=5)
    inline = [e.value for e in at.sidebar.error]
    assert str(exc.value) in inline  # under the field, in the sidebar
    assert not at.metric  # no stale numbers for an impossible model
    # a tuple field that does not parse names the field and what is allowed
    at = open_app(model="swin3d_t")
    sidebar_widget(at, "model:hp.swin3d_t.window_size").set_value("8,x,7")
    at.run()
    assert_clean(at)
    assert any("window_size" in e.value and "tuple of integers" in e.value for e in at.sidebar.error)


def test_model_link_round_trips_hyperparameters_and_page_state():
    params = {"model": "timesformer_base", "attention_type": "joint_space_time", "num_frames": "16",
              "section": "cost", "search": "MLP", "breakdown": "macs"}
    at = open_app(**params)
    assert_clean(at)
    assert not at.warning
    assert sidebar_widget(at, "model:hp.timesformer_base.num_frames").value == 16
    assert sidebar_widget(at, "model:hp.timesformer_base.attention_type").value == "joint_space_time"
    assert at.radio(key="model.breakdown").value == "macs"
    assert at.query_params == params
    # the layers section takes the link's filter; the breakdown's split stays in the link while it is hidden,
    # and comes back with its section
    at.button_group(key="model.section").set_value("layers").run()
    params.pop("section")
    assert at.text_input(key="model.search").value == "MLP"
    assert at.query_params == params
    expected = vac.summarize("timesformer_base", num_frames=16, attention_type="joint_space_time")
    assert metric(at, "parameters") == f"{expected.params:,}"
    # the filter keeps exactly the modules whose name or type contains the text, case ignored; a fresh session
    # opened with the written link shows the same view
    shown = at.dataframe[0].value
    wanted = [r.name for r in expected.layers if "mlp" in r.name.lower() or "mlp" in r.type.lower()]
    assert list(shown["name"]) == wanted and 0 < len(wanted) < len(expected.layers)
    again = open_app(**at.query_params)
    assert metric(again, "MACs per view") == metric(at, "MACs per view")
    assert again.query_params == params
    at.button_group(key="model.section").set_value("cost").run()
    assert at.radio(key="model.breakdown").value == "macs"
    assert at.query_params == {**params, "section": "cost"}


def test_tampered_link_falls_back_and_says_what_was_ignored():
    at = open_app(model="timesformer_base", num_frames="-3", num_heads="5", bogus="1", breakdown="nope",
                  section="../run")
    assert_clean(at)
    text = at.warning[0].value
    for name in ("num_frames", "num_heads", "bogus", "breakdown", "section"):
        assert f"{name}=" in text
    assert "not divisible" in text and "not a hyperparameter" in text
    base = vac.summarize("timesformer_base")
    assert metric(at, "parameters") == f"{base.params:,}"
    assert at.query_params == {"model": "timesformer_base"}
    at = open_app(model="no_such_model")
    assert "unknown model" in at.warning[0].value
    assert sidebar_widget(at, "model:w.preset").value == "timesformer_base"


def test_model_table_downloads_as_csv(monkeypatch):
    """The downloaded file is the whole layer table: one row per module of the model, with its exact counts."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stored = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        stored[file_id] = (path_or_data, filename)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = open_app(model="swin3d_t")
    assert_clean(at)
    assert sidebar_widget(at, "model:w.family").value == "swin3d"
    button = at.get("download_button")[0]
    assert "CSV" in button.proto.label
    data, filename = stored[button.proto.url.rsplit("/", 1)[-1].split(".")[0]]
    assert filename == "swin3d_t_layers.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode() if isinstance(data, bytes) else data)))
    summary = vac.summarize("swin3d_t")
    assert len(rows) == len(summary.layers)
    for row, layer in zip(rows, summary.layers):
        assert row["name"] == (layer.name or "(model)") and row["type"] == layer.type
        assert (int(row["params"]), int(row["MACs"])) == (layer.params_total, layer.macs_total)
        assert (int(row["own params"]), int(row["own MACs"])) == (layer.params, layer.macs)
    assert int(rows[0]["params"]) == summary.params == 28_158_070 and int(rows[0]["MACs"]) == summary.macs
    # with no filter the table on the page is the file
    shown = at.dataframe[0].value
    assert list(shown["name"]) == [r["name"] for r in rows]
    assert [int(v) for v in shown["MACs"]] == [int(r["MACs"]) for r in rows]


def test_family_switch_picks_a_preset_of_that_family():
    at = open_app(model="timesformer_base")
    sidebar_widget(at, "model:w.family").set_value("mvit")
    at.run()
    assert_clean(at)
    assert sidebar_widget(at, "model:w.preset").value in vac.list_models("mvit")
    assert at.query_params["model"] in vac.list_models("mvit")


def test_presets_page_lists_presets_with_parameter_counts():
    at = open_app("home")
    assert_clean(at)
    table = at.dataframe[0].value.set_index("preset")
    assert int(table.loc["timesformer_base", "parameters"]) == 121_566_352


# ------------------------------------------------------------------------------------------------ Run page

def test_run_page_predicts_with_random_weights_warning_and_measured_table():
    at = open_app("run", **SMALL_TSF, topk="3")
    assert_clean(at)
    assert any("Random weights" in w.value for w in at.warning)
    spec = charts(at)
    topk = next(c for c in spec if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    assert len(topk["data"][0]["y"]) == 3
    frames = next(c for c in spec if c["data"][0]["type"] == "image")
    assert len(frames["data"]) == 8  # the 8 sampled frames
    measured = at.dataframe[0].value
    assert {"time (ms)", "analytic MACs", "measured MACs"} <= set(measured.columns)
    assert metric(at, "analytic MACs") == figures.human(vac.summarize("timesformer_base", depth=2,
                                                                          img_size=64).macs)
    assert at.query_params == {**SMALL_TSF, "clip": DEFAULT_CLIP, "topk": "3"}
    at.slider(key="run.topk").set_value(7)
    at.run()
    topk = next(c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    assert len(topk["data"][0]["y"]) == 7


@pytest.mark.parametrize("page, key, params", [("run", "run.clip", SMALL_TSF),
                                               ("attention", "attention.clip", SMALL_TSF),
                                               ("side_by_side", "side.clip", {})])
def test_pages_open_on_big_buck_bunny_first_in_the_sample_box_and_credit_it(page, key, params):
    at = open_app(page, **params)
    assert_clean(at)
    box = at.selectbox(key=key)
    assert box.value == DEFAULT_CLIP and box.options[0] == DEFAULT_CLIP
    assert {"moving_square", "rotating_bar", "flash"} <= set(box.options)  # the synthetic clips stay offered
    assert any("Big Buck Bunny © Blender Foundation" in c.value and "CC BY 3.0" in c.value for c in at.caption)
    box.set_value("rotating_bar").run()  # the credit goes with the clip
    assert_clean(at)
    assert not any("Big Buck Bunny" in c.value for c in at.caption)


def test_run_page_default_predictions_are_the_librarys_on_big_buck_bunny():
    at = open_app("run", **SMALL_TSF)
    assert_clean(at)
    expected = vac.predict("timesformer_base", ROOT / "assets" / f"{DEFAULT_CLIP}.mp4", device="cpu", top_k=5,
                           overrides={"depth": 2, "img_size": 64})
    bars = next(c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    assert list(bars["data"][0]["y"])[::-1] == [p["label"] for p in expected.predictions]
    np.testing.assert_allclose(array(bars["data"][0]["x"])[::-1], [p["probability"] for p in expected.predictions],
                               rtol=1e-6)


def test_run_page_runs_in_bfloat16_on_the_cpu():
    """bfloat16 is offered on the CPU too (AMX and AVX-512 BF16 compute it in hardware): the predictions and the
    measured table are made from the bfloat16 forward, and the link keeps the choice."""
    f32 = open_app("run", **SMALL_TSF)
    at = open_app("run", **SMALL_TSF, dtype="bfloat16")
    assert_clean(at)
    assert at.selectbox(key="run.dtype").value == "bfloat16" and not at.selectbox(key="run.dtype").disabled
    assert any("in bfloat16" in c.value for c in at.caption)
    assert at.query_params == {**SMALL_TSF, "clip": DEFAULT_CLIP, "dtype": "bfloat16"}

    def top(app):
        bars = next(c for c in charts(app) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
        return array(bars["data"][0]["x"])

    probs, probs32 = top(at), top(f32)
    assert len(probs) == 5 and np.all(np.isfinite(probs)) and not np.array_equal(probs, probs32)
    assert np.allclose(np.sort(probs), np.sort(probs32), rtol=0.05)  # the same network, 8 mantissa bits
    assert at.dataframe[0].value["time (ms)"].notna().all()


def test_the_run_page_hints_at_bfloat16_where_the_device_computes_it_in_hardware():
    """The default stays float32; where bfloat16 is native (AMX, AVX-512 BF16, a recent GPU: detected, not
    assumed) the caption under the dtype box says it would be faster, elsewhere it says nothing of it."""
    at = open_app("run", **SMALL_TSF)
    assert_clean(at)
    assert at.selectbox(key="run.dtype").value == "float32" and not at.selectbox(key="run.dtype").disabled
    hinted = any("bfloat16 would be faster" in c.value for c in at.caption)
    assert hinted == devices.native_bfloat16("cpu")


@pytest.mark.parametrize("params", [
    {**SMALL_TSF, "rollout": "on"}, {**SMALL_TSF, "explain": "relevance"},
    {"model": "swin3d_t", "num_frames": "8", "depths": "2,2,2,2", "img_size": "112", "headstats": "on"},
    {"model": "mvit_v2_s", "num_frames": "8", "depths": "1,1,1,1", "explain": "gradcam"},
    {"model": "vjepa2_vitl", "embed_dim": "48", "num_heads": "3", "depth": "1", "pooler_depth": "1",
     "predictor_depth": "0", "img_size": "64", "num_frames": "4"},
], ids=["timesformer-rollout", "timesformer-relevance", "swin-headstats", "mvit-gradcam", "vjepa2-pooler"])
def test_attention_page_draws_every_view_from_a_bfloat16_forward(params):
    at = open_app("attention", **params, dtype="bfloat16")
    assert_clean(at)
    heat = [array(t["z"]) for c in charts(at) for t in c["data"] if t["type"] == "heatmap"]
    assert heat and all(np.isfinite(h).all() for h in heat)
    assert at.query_params["dtype"] == "bfloat16"


def test_run_page_takes_an_uploaded_clip_and_the_link_says_it_cannot_travel():
    at = open_app("run", **SMALL_TSF)
    at.radio(key="run.source").set_value("upload")
    at.run()
    data = (ROOT / "assets" / "rotating_bar.mp4").read_bytes()
    at.file_uploader(key="run.upload").upload("../../etc/passwd.mp4", data, "video/mp4")
    at.run()
    assert_clean(at)
    assert any("uploaded clip" in c.value for c in at.caption)
    assert at.query_params["clip"] == "upload"
    # whoever opens that link gets the sample clip, and is told why
    again = open_app("run", **at.query_params)
    assert_clean(again)
    assert "uploaded clip cannot travel in a link" in again.warning[0].value
    assert again.selectbox(key="run.clip").value == DEFAULT_CLIP


def test_run_page_refuses_a_config_that_cannot_fit_before_allocating():
    at = open_app("run", model="timesformer_base", num_frames="512", img_size="4096")
    assert_clean(at)
    refusal = [e.value for e in at.error if e.value.startswith("Refused")]
    assert refusal and "needs an estimated" in refusal[0] and "free" in refusal[0]


def test_run_and_attention_are_not_applicable_to_fiery():
    for page in ("run", "attention"):
        at = open_app(page, model="fiery_temporal")
        assert_clean(at)
        assert any("Not applicable" in i.value for i in at.info)


def test_invalid_hyperparameter_on_run_page_is_inline():
    at = open_app("run", **SMALL_TSF)
    sidebar_widget(at, "run:hp.timesformer_base.patch_size").set_value(15)
    at.run()
    assert_clean(at)
    assert any("img_size=64 is not divisible by patch_size=15" in e.value for e in at.sidebar.error)


# ------------------------------------------------------------------------------------------------ Attention page

def test_attention_page_divided_spatial_map_over_frames_and_rollout():
    at = open_app("attention", **SMALL_TSF, rollout="on")
    assert_clean(at)
    assert at.selectbox(key="attention.layer").value == "blocks.1.attn"  # last spatial layer, with its CLS
    spec = charts(at)
    overlays = [c for c in spec if any(t["type"] == "heatmap" for t in c["data"])
                and any(t["type"] == "image" for t in c["data"])]
    assert len(overlays) >= 3  # the chosen frame, every frame, the rollout
    strip = overlays[1]
    assert sum(t["type"] == "heatmap" for t in strip["data"]) == 8
    assert at.query_params["rollout"] == "on"


def test_attention_link_round_trips_layer_head_query_and_frame():
    params = {**SMALL_TSF, "layer": "blocks.0.temporal_attn", "head": "3", "query": "2,1,3", "frame": "5"}
    at = open_app("attention", **params)
    assert_clean(at)
    assert not at.warning
    assert at.selectbox(key="attention.layer").value == "blocks.0.temporal_attn"
    assert at.selectbox(key="attention.head").value == 3
    assert (at.slider(key="attention.qt").value, at.slider(key="attention.qy").value,
            at.slider(key="attention.qx").value) == (2, 1, 3)
    assert at.slider(key="attention.frame").value == 5
    temporal = [c for c in charts(at) if c["layout"].get("yaxis", {}).get("title", {}).get("text") == "query frame"]
    assert temporal and array(temporal[0]["data"][0]["z"]).shape == (8, 8)  # T×T
    np.testing.assert_allclose(array(temporal[0]["data"][0]["z"]).sum(axis=1), 1.0, atol=1e-4)  # softmax rows
    assert at.query_params == {**params, "clip": DEFAULT_CLIP}
    # another head changes the map
    before = array(charts(at)[0]["data"][1]["z"])
    at.selectbox(key="attention.head").set_value(0)
    at.run()
    after = array(charts(at)[0]["data"][1]["z"])
    assert after.shape == before.shape and not np.allclose(after, before, equal_nan=True)
    assert at.query_params["head"] == "0"


def test_attention_link_with_impossible_values_falls_back():
    at = open_app("attention", **SMALL_TSF, layer="blocks.9.attn", query="9,9,9", head="99")
    assert_clean(at)
    messages = " ".join(w.value for w in at.warning)
    assert "layer='blocks.9.attn' ignored" in messages
    assert "head=99 ignored" in messages
    assert at.selectbox(key="attention.layer").value == "blocks.1.attn"


def test_attention_swin_window_borders_and_bias_tables():
    at = open_app("attention", model="swin3d_t", num_frames="8", depths="2,2,2,2", img_size="112",
                  layer="layers.0.blocks.1.attn", query="1,5,5")
    assert_clean(at)
    caption = " ".join(c.value for c in at.caption)
    # the 8×7×7 window is clipped to the 4-step token time axis, so only H and W shift
    assert "kind **window**" in caption and "shift 0×3×3" in caption and "cyclic shift undone" in caption
    frame_chart = charts(at)[0]
    assert any(s["type"] == "rect" for s in frame_chart["layout"].get("shapes", []))
    bias = [c for c in charts(at) if c["data"][0].get("colorscale") and c["data"][0].get("zmid") == 0]
    assert bias, "the relative position bias table is drawn"
    assert any("Rollout is not available" in i.value for i in at.info)


def test_attention_mvit_shows_pooled_grids():
    at = open_app("attention", model="mvit_v2_s", num_frames="8", depths="1,1,1,1", layer="blocks.1.attn")
    assert_clean(at)
    caption = " ".join(c.value for c in at.caption)
    assert "kind **pooled**" in caption and "key/value grid" in caption


# ------------------------------------------------------------------------------------------------ Compare page

def test_compare_page_side_by_side_with_inline_errors_and_links():
    at = open_app("compare", c1="timesformer_base;depth=2", c2="mvit_v2_s;num_frames=8", n="2")
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["parameters"]) == [vac.summarize("timesformer_base", depth=2).params,
                                         vac.summarize("mvit_v2_s", num_frames=8).params]
    assert "→" in table["tokens per stage"][1]  # MViT pools its tokens stage by stage
    links = at.get("page_link")
    assert len(links) == 2
    at.text_input(key="compare.c1.overrides").set_value("num_heads=5")
    at.run()
    assert_clean(at)
    assert any("not divisible by num_heads=5" in e.value for e in at.error)
    at.text_input(key="compare.c1.overrides").set_value("depth=1")
    at.slider(key="compare.n").set_value(4)
    at.run()
    assert len(at.dataframe[0].value) == 4
    assert at.query_params["c1"] == "timesformer_base;depth=1" and at.query_params["n"] == "4"


def test_compare_measures_time_and_peak_memory_on_request():
    at = open_app("compare", c1="timesformer_base;depth=1;img_size=64", c2="swin3d_t;depths=1,1,1,1;num_frames=4;"
                  "img_size=64", n="2")
    at.button(key="compare.measure").click()
    at.run()
    assert_clean(at)
    measured = at.dataframe[-1].value
    assert list(measured.columns) == ["configuration", "forward (ms)", "peak memory (MiB)"]
    params_mib = vac.summarize("timesformer_base", depth=1, img_size=64).params * 4 / 2**20
    assert measured["peak memory (MiB)"][0] > params_mib  # at least the weights
    assert (measured["forward (ms)"] > 0).all()


# ------------------------------------------------------------------------------------------------ sessions

def test_the_model_travels_between_pages_and_each_page_remembers_its_state():
    at = open_app(**SMALL_TSF)
    sidebar_widget(at, "model:hp.timesformer_base.depth").set_value(1)
    at.run()
    at.query_params.clear()  # the sidebar navigation drops the query string
    at.switch_page("pages/attention.py").run()
    assert_clean(at)
    assert sidebar_widget(at, "attention:w.preset").value == "timesformer_base"
    assert sidebar_widget(at, "attention:hp.timesformer_base.depth").value == 1
    assert at.query_params["depth"] == "1" and at.query_params["img_size"] == "64"
    at.selectbox(key="attention.clip").set_value("rotating_bar")
    at.selectbox(key="attention.layer").set_value("blocks.0.temporal_attn")
    at.run()
    at.query_params.clear()
    at.switch_page("pages/run.py").run()  # the clip chosen on Attention carries over
    assert_clean(at)
    assert at.selectbox(key="run.clip").value == "rotating_bar"
    at.query_params.clear()
    at.switch_page("pages/attention.py").run()  # and Attention still shows its layer
    assert at.selectbox(key="attention.layer").value == "blocks.0.temporal_attn"
    assert at.query_params["layer"] == "blocks.0.temporal_attn"


def test_two_sessions_keep_their_own_state():
    a = open_app(model="timesformer_base")
    b = open_app(model="swin3d_t")
    sidebar_widget(a, "model:hp.timesformer_base.depth").set_value(4)
    a.run()
    b.run()
    assert a.query_params == {"model": "timesformer_base", "depth": "4"}
    assert b.query_params == {"model": "swin3d_t"}
    assert metric(b, "parameters") == f"{vac.summarize('swin3d_t').params:,}"


def test_attention_page_vjepa2_pooler_cross_attention():
    """V-JEPA 2 at reduced size (the page takes the hyperparameters from the link): the default layer is the
    pooler's cross-attention, its learned query's map lies over the frames."""
    small = {"model": "vjepa2_vitl", "embed_dim": "48", "num_heads": "3", "depth": "1", "pooler_depth": "1",
             "predictor_depth": "0", "img_size": "64", "num_frames": "4"}
    at = open_app("attention", **small)
    assert_clean(at)
    assert at.selectbox(key="attention.layer").value == "pooler.cross_attention_block.xattn"
    caption = " ".join(c.value for c in at.caption)
    assert "kind **cross**" in caption and "token grid T×H×W = 2×4×4" in caption
    heat = next(c for c in charts(at) if any(t["type"] == "heatmap" for t in c["data"]))
    values = array(next(t for t in heat["data"] if t["type"] == "heatmap")["z"])
    assert values.shape == (4, 4) and np.isfinite(values).all()


def test_attention_page_explain_view_animates_the_chosen_class_and_round_trips():
    at = open_app("attention", **SMALL_TSF, explain="relevance")
    assert_clean(at)
    picker = at.selectbox(key="attention.target")
    assert len(picker.options) == 5
    target = picker.value  # the top class by default
    assert at.query_params["explain"] == "relevance" and int(at.query_params["target"]) == target
    animated = [c for c in charts(at) if c.get("frames")]
    assert len(animated) == 1 and len(animated[0]["frames"]) == 8  # one animation frame per clip frame
    assert animated[0]["data"][1]["type"] == "heatmap" and array(animated[0]["data"][1]["z"]).max() > 0

    fresh = open_app("attention", **SMALL_TSF, explain="gradcam", target=str(target), camlayer="blocks.1")
    assert_clean(fresh)
    assert fresh.selectbox(key="attention.target").value == target
    assert fresh.selectbox(key="attention.camlayer").value == "blocks.1"
    assert fresh.query_params["camlayer"] == "blocks.1"
