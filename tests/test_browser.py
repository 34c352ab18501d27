"""The app in a real browser: ``streamlit run`` on 127.0.0.1, headless Chromium through Playwright.

Opens share links (a model, a run, an attention view), changes a hyperparameter, uploads a sample clip, and
reads what the user sees: the metric widgets' text and the data of the Plotly charts (``.js-plotly-plot``
elements), which must equal what the library computes for the same configuration, clip and seed-0 weights. No
exception may show. The server's output goes to a log file whose tail a failing test's report shows;
screenshots of every page go to ``test-artifacts/screenshots/`` (git-ignored; the folder is printed).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import videoattn_core as vac

pytest.register_assert_rewrite("browser_support")  # before its import: its assertions explain themselves
from browser_support import (ServedApp, TIMEOUT_MS, as_array, assert_no_exception, assert_same_map, find_chart,
                             wait_idle)
from reference import Reference
from videoattn_core.attention import maps as attention_maps
from videoattn_core import figures
from videoattn_core.run import runtime

pytest_plugins = ["browser_support"]  # a failing test's report shows the server log's tail
pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SHOTS = ROOT / "test-artifacts" / "screenshots"
#: pages and library run the same float32 code on the CPU (equal here bit for bit); a few float32 ulps of slack
RTOL = 1e-6
#: the sample clip a page shows when the link names none
DEFAULT_CLIP = "big_buck_bunny"
#: the small TimeSformer the run and attention links use
SMALL_TIMESFORMER = {"depth": 2, "img_size": 64}


@pytest.fixture(scope="module", autouse=True)
def screenshots_folder():
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SHOTS}")
    return SHOTS


def metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def shoot(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so the viewport is grown to it."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]')]"
                           ".map(e => e.scrollHeight), 1000)")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 12000)})
    page.wait_for_timeout(500)  # let Plotly redraw at the new size
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


# ------------------------------------------------------------------------------------------------ Model page

#: the rows of the category-share chart, as the Model page labels the two costs
COST_LABELS = {"parameters": "params", "MACs": "macs"}


def is_sunburst(chart) -> bool:
    return bool(chart.of_type("sunburst"))


def is_category_shares(chart) -> bool:
    return chart.barmode == "stack" and all(t.get("orientation") == "h" for t in chart.traces)


def assert_cost_breakdown_drawn(page, summary, split: str) -> None:
    """The sunburst of ``split`` ("params" or "macs") and the category shares hold the summary's numbers."""
    sunburst = find_chart(page, "cost breakdown (sunburst)", is_sunburst).of_type("sunburst")[0]
    ids, parents = list(sunburst["ids"]), list(sunburst["parents"])
    values = dict(zip(ids, as_array(sunburst["values"]).tolist()))
    children: dict[str, list[str]] = {}
    for node, parent in zip(ids, parents):
        children.setdefault(parent, []).append(node)
    expected_total = summary.params if split == "params" else summary.macs
    # the inner ring: one wedge per category, the summary's breakdown, adding up to the headline count
    assert {c: values[c] for c in children[""]} == {c: float(v) for c, v in summary.breakdown()[split].items()}
    assert sum(values[c] for c in children[""]) == expected_total
    # every wedge is the sum of its children (branchvalues="total"), and the outer ring holds each layer's own count
    for node, kids in children.items():
        if node:
            assert values[node] == sum(values[k] for k in kids), node
    drawn_layers = {node.split("/")[-1]: (node.split("/")[0], values[node]) for node in ids if node not in children}
    own = {r.name or "(model)": (r.category, float(getattr(r, split))) for r in summary.leaves()
           if getattr(r, split) > 0}
    assert drawn_layers == own

    shares = find_chart(page, "share per category", is_category_shares)
    breakdown = summary.breakdown()
    assert {t["name"] for t in shares.traces} == set(breakdown["params"]) | set(breakdown["macs"])
    for trace in shares.traces:
        category = trace["name"]
        for label, share, text in zip(trace["y"], as_array(trace["x"]).tolist(), trace["text"]):
            per = breakdown[COST_LABELS[label]]
            count = per.get(category, 0)
            assert share == pytest.approx(100.0 * count / sum(per.values()), rel=1e-12), (category, label)
            assert text == figures.human(count), (category, label)


def assert_growth_drawn(page, preset: str, summary, overrides: dict) -> None:
    """The 'MACs against frames' curves of this config: each point is the summary at that many frames."""
    chart = find_chart(page, "MACs against frames", lambda c: c.xaxis == "frames" and bool(c.of_type("scatter")))
    mine = [t for t in chart.traces if t.get("name", "").startswith("this config")]
    total = next(t for t in mine if t["name"].endswith("total"))
    attention = next(t for t in mine if t["name"].endswith("attention"))
    frames = [int(f) for f in total["x"]]
    assert summary.frames in frames
    for x, y_total, y_attention in zip(frames, as_array(total["y"]), as_array(attention["y"])):
        at = vac.summarize(preset, frames=x, **overrides)
        assert (y_total, y_attention) == (at.macs, at.breakdown()["macs"]["attention"]), x


def test_model_share_link_then_a_hyperparameter_change(server, page):
    expected = vac.summarize("mvit_v2_s")
    page.goto(f"{server}/?model=mvit_v2_s")
    page.wait_for_selector(f'[data-testid="stMetricValue"]:has-text("{expected.params:,}")')
    wait_idle(page)
    # the layer table first; no chart library is started for it
    page.wait_for_selector('[data-testid="stDataFrame"]')
    assert page.locator(".js-plotly-plot").count() == 0
    # the metric widgets: the published parameter count (torchvision's mvit_v2_s), the summary's MACs and FLOPs
    assert metric_value(page, "parameters") == f"{Reference('mvit_v2_s').params:,}" == f"{expected.params:,}"
    assert metric_value(page, "MACs per view") == figures.human(expected.macs)
    assert metric_value(page, "FLOPs per view") == figures.human(2 * expected.macs)
    assert f"{expected.macs:,}" in page.inner_text("body")  # the exact count, beside the rounded one
    shoot(page, "model_mvit_v2_s")
    # the growth curves, then the breakdown: each section in the URL
    page.get_by_role("radio", name="How the cost grows", exact=True).click()
    page.wait_for_url(re.compile(r".*section=growth.*"))
    wait_idle(page)
    assert_growth_drawn(page, "mvit_v2_s", expected, {})
    page.get_by_role("radio", name="Where the cost sits", exact=True).click()
    page.wait_for_url(re.compile(r".*section=cost.*"))
    wait_idle(page)
    assert_cost_breakdown_drawn(page, expected, "params")
    assert_no_exception(page)
    shoot(page, "model_mvit_v2_s_cost")

    # the split of the breakdown follows its radio and the URL
    page.get_by_role("radio", name="MACs", exact=True).check(force=True)
    page.wait_for_url(re.compile(r".*breakdown=macs.*"))
    wait_idle(page)
    assert_cost_breakdown_drawn(page, expected, "macs")

    # a hyperparameter typed in the sidebar updates the numbers, the charts and the URL
    box = page.get_by_role("spinbutton", name="img_size", exact=True)
    box.fill("256")
    box.press("Enter")
    bigger = vac.summarize("mvit_v2_s", img_size=256)
    page.wait_for_selector(f'[data-testid="stMetricValue"]:has-text("{figures.human(bigger.macs)}")')
    page.wait_for_url(re.compile(r".*img_size=256.*"))
    wait_idle(page)
    assert metric_value(page, "parameters") == f"{bigger.params:,}"
    assert_cost_breakdown_drawn(page, bigger, "macs")
    assert_no_exception(page)


def test_invalid_link_values_are_named_and_ignored(server, page, browser):
    page.goto(f"{server}/?model=timesformer_base&num_heads=5&num_frames=banana")
    page.wait_for_selector('[data-testid="stAlert"]:has-text("ignored")')
    wait_idle(page)
    text = page.inner_text("body")
    assert "num_heads=" in text and "num_frames=" in text
    assert metric_value(page, "parameters") == f"{vac.summarize('timesformer_base').params:,}"
    assert_no_exception(page)
    shoot(page, "model_tampered_link")

    # a second browser session at the same time has its own state
    other = browser.new_context().new_page()
    other.goto(f"{server}/?model=swin3d_t")
    other.wait_for_selector(f'[data-testid="stMetricValue"]:has-text("{vac.summarize("swin3d_t").params:,}")')
    page.reload()
    page.wait_for_selector('[data-testid="stMetric"]')
    wait_idle(page)
    assert metric_value(page, "parameters") == f"{vac.summarize('timesformer_base').params:,}"
    other.context.close()


# ------------------------------------------------------------------------------------------------ Attention page

def attention_heatmaps(chart, colorbar: str = "attention") -> list[np.ndarray]:
    return [as_array(t["z"]) for t in chart.of_type("heatmap") if t.get("colorbar") in (colorbar, None)]


def is_frame_map(chart) -> bool:
    return bool(chart.of_type("image")) and len(attention_heatmaps(chart)) == 1 and not is_rollout(chart)


def is_every_frame_map(chart) -> bool:
    return bool(chart.of_type("image")) and len(attention_heatmaps(chart)) > 1 and not is_rollout(chart)


def is_rollout(chart) -> bool:
    return any(t.get("colorbar") == "rollout" for t in chart.of_type("heatmap"))


def is_temporal_matrix(chart) -> bool:
    return bool(chart.of_type("heatmap")) and not chart.of_type("image")


def per_frame(values: np.ndarray, frames: int) -> np.ndarray:
    """A map on the token grid ``(T', h, w)`` spread over the ``frames`` frames: a token slice covers
    ``frames / T'`` consecutive frames (a tubelet, or temporal pooling)."""
    assert frames % values.shape[0] == 0, (frames, values.shape)
    return np.repeat(values, frames // values.shape[0], axis=0)


def library_attention(preset: str, overrides: dict, clip: Path, layer: str):
    """What the library captures for ``layer`` on the first view of ``clip``, seed-0 random weights, CPU:
    ``(model, x, captured)``."""
    plan = runtime.plan_run(preset, clip, overrides=overrides, device="cpu", estimate=False)
    x = runtime.load_inputs(plan, clip).tensor[:1]
    model = runtime.build_seeded(plan.config, 0).eval()
    with torch.no_grad():
        captured = vac.inspect(model, x, attention_layers=[layer], measure_macs=False).attention[layer]
    return model, x, captured


def assert_attention_drawn(page, preset: str, overrides: dict, layer: str, query, head, frame: int):
    """The page's map of one frame and of every frame equal the library's attention map of the same layer, head
    and query, on the clip the page names; returns ``(model, x, captured, map spread over the frames)``."""
    clip = ASSETS / f"{shown_sample_clip(page)}.mp4"
    model, x, captured = library_attention(preset, overrides, clip, layer)
    amap = attention_maps.attention_map(captured, query=query, head=head)
    frames = int(x.shape[2])
    expected = per_frame(amap.values, frames)
    (shown,) = attention_heatmaps(find_chart(page, "attention on one frame", is_frame_map))
    assert_same_map(shown, expected[frame], f"{layer} on frame {frame}", rtol=RTOL)
    strip = attention_heatmaps(find_chart(page, "attention on every frame", is_every_frame_map))
    assert len(strip) == frames
    for f, shown in enumerate(strip):
        assert_same_map(shown, expected[f], f"{layer} on frame {f} of the strip", rtol=RTOL)
    return model, x, captured, expected


def test_attention_share_link(server, page):
    link = ("/attention?model=timesformer_base&depth=2&img_size=64&layer=blocks.0.temporal_attn&head=1"
            "&query=3,2,1&frame=3&rollout=on")
    page.goto(server + link)
    page.wait_for_selector("text=temporal attention at patch")
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    assert page.locator(".js-plotly-plot").count() >= 4  # the frame, the T×T matrix, every frame, the rollout
    assert "kind time" in page.inner_text("body")
    # the maps: head 1 of the first block's temporal attention, query patch (t=3, y=2, x=1)
    model, x, captured, maps = assert_attention_drawn(page, "timesformer_base", SMALL_TIMESFORMER,
                                                      "blocks.0.temporal_attn", (3, 2, 1), 1, 3)
    (matrix,) = attention_heatmaps(find_chart(page, "temporal T×T matrix", is_temporal_matrix))
    assert_same_map(matrix, attention_maps.temporal_matrix(captured, (2, 1), head=1), "T×T matrix", rtol=RTOL)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-5)  # each query frame's softmax
    # the matrix's row of query frame 3 is what the frame maps show at the query's cell
    np.testing.assert_allclose(matrix[3], maps[:, 2, 1], rtol=RTOL)
    rolled = attention_heatmaps(find_chart(page, "attention rollout", is_rollout), "rollout")
    expected_rollout = per_frame(attention_maps.rollout(model, x), int(x.shape[2]))
    assert len(rolled) == len(expected_rollout)
    for f, shown in enumerate(rolled):
        assert_same_map(shown, expected_rollout[f], f"rollout on frame {f}", rtol=RTOL)
    assert_no_exception(page)
    shoot(page, "attention_timesformer_temporal")

    page.goto(server + "/attention?model=swin3d_t&num_frames=8&depths=2,2,2,2&img_size=112"
                       "&layer=layers.0.blocks.1.attn&query=1,5,5")
    page.wait_for_selector("text=cyclic shift undone")
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    # a shifted window: mean over heads, query patch (t=1, y=5, x=5); NaN outside the query's window
    assert_attention_drawn(page, "swin3d_t", {"num_frames": 8, "depths": (2, 2, 2, 2), "img_size": 112},
                           "layers.0.blocks.1.attn", (1, 5, 5), None, 0)
    assert_no_exception(page)
    shoot(page, "attention_swin_window")

    page.goto(server + "/attention?model=mvit_v2_s&num_frames=8&depths=1,1,1,1&layer=blocks.1.attn")
    page.wait_for_selector("text=key/value grid")
    wait_idle(page)
    # pooled keys: the CLS query (the default) over the pooled key grid, mean over heads
    assert_attention_drawn(page, "mvit_v2_s", {"num_frames": 8, "depths": (1, 1, 1, 1)}, "blocks.1.attn",
                           "cls", None, 0)
    assert_no_exception(page)
    shoot(page, "attention_mvit_pooled")


# ------------------------------------------------------------------------------------------------ Run page

def is_topk(chart) -> bool:
    return len(chart.traces) == 1 and chart.traces[0].get("type") == "bar" and chart.traces[0].get("orientation") == "h"


def shown_sample_clip(page) -> str:
    """The sample clip the Run or Attention page says it uses (its 'sample clip' box)."""
    return page.get_by_role("combobox", name="sample clip", exact=True).input_value()


def assert_predictions_drawn(page, clip: Path, k: int, overrides: dict) -> None:
    """The top-k bars (best on top) are ``vac.predict``'s on the same clip, seed-0 random weights, CPU."""
    expected = vac.predict("timesformer_base", clip, overrides=overrides, device="cpu", top_k=k)
    assert expected.random_init and expected.seed == 0
    bars = find_chart(page, "top-k predictions", is_topk).traces[0]
    labels = list(bars["y"])[::-1]
    probabilities = as_array(bars["x"])[::-1]
    assert labels == [p["label"] for p in expected.predictions]
    np.testing.assert_allclose(probabilities, [p["probability"] for p in expected.predictions], rtol=RTOL, atol=0)
    # they are the k largest of the whole softmax
    assert probabilities.tolist() == pytest.approx(sorted(expected.probabilities, reverse=True)[:k], rel=RTOL)


def test_run_share_link_shows_the_library_predictions(server, page):
    """A run link with a clip and a top-k: the bars are the library's prediction for that clip."""
    page.goto(f"{server}/run?model=timesformer_base&depth=2&img_size=64&clip=rotating_bar&topk=7")
    page.wait_for_selector("text=Random weights")
    wait_idle(page)
    assert shown_sample_clip(page) == "rotating_bar"
    assert_predictions_drawn(page, ASSETS / "rotating_bar.mp4", 7, SMALL_TIMESFORMER)
    analytic = vac.summarize("timesformer_base", **SMALL_TIMESFORMER).macs
    assert metric_value(page, "analytic MACs") == figures.human(analytic)
    assert_no_exception(page)


def test_run_page_with_an_uploaded_clip(server, page):
    # the model chosen by a link on the Model page travels to the Run page through the navigation
    page.goto(f"{server}/?model=timesformer_base&depth=2&img_size=64")
    page.wait_for_selector('[data-testid="stMetric"]')
    wait_idle(page)
    page.get_by_role("link", name="Run").click()
    page.wait_for_selector("text=Frames the model sees")
    page.wait_for_url(re.compile(r".*/run\?.*depth=2.*"))
    wait_idle(page)
    # no clip in the link: the default sample clip, and its predictions
    assert shown_sample_clip(page) == DEFAULT_CLIP
    assert_predictions_drawn(page, ASSETS / f"{DEFAULT_CLIP}.mp4", 5, SMALL_TIMESFORMER)

    page.get_by_text("upload a clip", exact=True).click()
    page.wait_for_selector('[data-testid="stFileUploader"]')
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(ASSETS / "flash.mp4"))
    page.wait_for_selector("text=uploaded clip:")
    page.wait_for_url(re.compile(r".*clip=upload.*"))
    wait_idle(page)
    page.wait_for_selector("text=Random weights")
    assert page.locator(".js-plotly-plot").count() >= 4  # frames, top-k, times, MACs
    assert "cannot travel in a link" in page.inner_text("body")
    # the uploaded bytes are classified as the same file read from disk
    assert_predictions_drawn(page, ASSETS / "flash.mp4", 5, SMALL_TIMESFORMER)
    assert_no_exception(page)
    shoot(page, "run_uploaded_clip")


def test_compare_page(server, page):
    page.goto(f"{server}/compare?c1=timesformer_base;depth=2&c2=mvit_v2_s&c3=swin3d_t")
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    assert page.locator(".js-plotly-plot").count() >= 3
    assert page.get_by_text("open in the Model page").count() == 3
    assert_no_exception(page)
    shoot(page, "compare")


def test_first_visitor_of_a_fresh_server_opening_a_page_link_gets_the_router(page, tmp_path):
    """A share link to a page is often the first request a server sees; it must go through app.py's
    navigation, not Streamlit's pages-directory fallback (which would list pages/_state.py as a page)."""
    with ServedApp(tmp_path) as fresh:
        page.goto(fresh.url + "/attention?model=timesformer_base&depth=2&img_size=64&layer=blocks.0.attn")
        page.wait_for_selector("text=Share this view")
        wait_idle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert [w for w in ("Model", "Run", "Attention", "Compare", "Presets") if w not in nav] == []
        assert "common" not in nav and "app" not in nav.split()
        assert page.url.split("?")[0].endswith("/attention")
        assert "layer=blocks.0.attn" in page.url
        assert_no_exception(page)


@pytest.mark.parametrize("path,what", [
    ("/?model=videomae_base", "videomae_base"),
    ("/?model=vivit_b", "vivit_b"),
    ("/attention?model=vjepa2_vitl", "vjepa2_vitl"),
])
def test_new_families_open_from_their_links(server, page, path, what):
    """VideoMAE, ViViT and V-JEPA 2 from a share link in a fresh browser: the Model page shows the published
    parameter count; V-JEPA 2's Attention page (375 M parameters, ~936 GMACs a view on the CPU) waits for the Run
    button instead of forwarding at once, with its cost stated."""
    page.goto(f"{server}{path}")
    if path.startswith("/?"):
        wait_idle(page)
    else:  # the page stops at the Run button, before its share box
        page.wait_for_selector("text=press Run to start it", timeout=TIMEOUT_MS)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=TIMEOUT_MS)
    assert_no_exception(page)
    if path.startswith("/?"):
        assert metric_value(page, "parameters") == f"{vac.summarize(what).params:,}"
        shoot(page, f"model_{what}")
    else:
        body = page.inner_text("body")
        assert "press Run to start it" in body and figures.human(vac.summarize(what).macs) in body
        assert page.get_by_role("button", name="Run").count() == 1
