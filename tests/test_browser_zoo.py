"""The Zoo and Side-by-side pages in a real browser (``streamlit run`` + headless Chromium), and the README's tour.

The zoo chart's points and frontier are read from the page and compared with the catalog (top-1) and the library
(MACs × views of each entry's network); a click on a point opens that entry; the side-by-side bars are
``vac.predict``'s. Screenshots go to ``test-artifacts/screenshots/``; with ``VIDEOATTN_DOCS_SCREENSHOTS=1``
(``make screenshots``) a small copy of each page's first screen also goes to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import videoattn_core as vac

pytest.register_assert_rewrite("browser_support")
from browser_support import ServedApp, as_array, assert_no_exception, find_chart, read_charts, wait_idle
from videoattn_core.weights import lookup as W

pytest_plugins = ["browser_support"]
pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
RTOL = 1e-6
#: the README's images: the first screen of a page, this wide, in this many colours
DOCS_WIDTH, DOCS_COLORS, DOCS_HEIGHT = 960, 80, 1350


def shoot(page, name: str) -> None:
    """The whole page into test-artifacts; its first screen, small, into docs/screenshots when asked."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if os.environ.get("VIDEOATTN_DOCS_SCREENSHOTS"):
        from PIL import Image

        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        raw = SHOTS / f"{name}.screen.png"
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": DOCS_HEIGHT})
        page.wait_for_timeout(500)
        page.screenshot(path=str(raw))
        page.set_viewport_size(size)
        with Image.open(raw) as image:
            image = image.convert("RGB")
            image = image.resize((DOCS_WIDTH, round(image.height * DOCS_WIDTH / image.width)), Image.LANCZOS)
            image.quantize(colors=DOCS_COLORS, method=Image.Quantize.MEDIANCUT).save(
                DOCS_SHOTS / f"{name}.png", optimize=True)


# ------------------------------------------------------------------------------------------------ Zoo

def is_zoo(chart) -> bool:
    return any(t.get("name") == "Pareto frontier" for t in chart.traces)


def shown_points(chart) -> tuple[dict[str, tuple[str, float, float]], list[str]]:
    points, front = {}, []
    for t in chart.traces:
        if t.get("name") == "Pareto frontier":
            front = list(t["ids"])
            continue
        for name, x, y in zip(t["ids"], as_array(t["x"]), as_array(t["y"])):
            points[name] = (t["name"], float(x), float(y))
    return points, front


_POINT_XY = """(name) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
      g => (g.data || []).some(t => t.name === 'Pareto frontier'));
  for (const t of gd.data) {
    if (t.name === 'Pareto frontier' || !t.ids) continue;
    const i = Array.from(t.ids).indexOf(name);
    if (i < 0) continue;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return {x: box.left + xa._offset + xa.l2p(xa.c2l(t.x[i])), y: box.top + ya._offset + ya.l2p(ya.c2l(t.y[i]))};
  }
  return null;
}"""


def test_zoo_points_and_frontier_are_the_catalogs_and_a_click_opens_the_entry(server, page):
    page.goto(f"{server}/zoo")
    wait_idle(page)
    chart = find_chart(page, "zoo", is_zoo)
    points, front = shown_points(chart)
    expected = {e.name: e for e in W.CATALOG.values() if e.dataset == "kinetics400"}
    assert set(points) == set(expected)
    costs = {}
    for name, e in expected.items():
        config = vac.get_config(e.preset, **e.overrides)
        costs[name] = vac.summarize(config).macs * e.recipe.clips * e.recipe.crops
        assert points[name] == (config.family, costs[name], e.metrics["acc@1"]), name
    top1 = {n: e.metrics["acc@1"] for n, e in expected.items()}
    undominated = {n for n in expected if not any(
        costs[m] <= costs[n] and top1[m] >= top1[n] and (costs[m] < costs[n] or top1[m] > top1[n]) for m in expected)}
    assert set(front) == undominated
    assert_no_exception(page)
    shoot(page, "zoo")

    # a click on a point chooses that entry, whose links open it in the Model and Run pages
    target = "mvit_v2_b.official_k400"
    xy = page.evaluate(_POINT_XY, target)
    page.mouse.click(xy["x"], xy["y"])
    page.wait_for_function("(name) => document.body.innerText.includes('run ' + name + ' on a clip')", arg=target)
    wait_idle(page)
    run_link = page.get_by_role("link", name=f"run {target} on a clip in the Run page")
    assert re.search(rf"(^|/)run\?model=mvit_v2_b&weights={re.escape(target)}$", run_link.get_attribute("href"))
    assert f"entry={target}" in page.url
    assert_no_exception(page)


# ------------------------------------------------------------------------------------------------ Side by side

SIDE = "m1=timesformer_base;depth=2;img_size=64&m2=mvit_v2_s;depths=1,1,1,1;num_frames=4;img_size=64&clip=moving_square&topk=3"


def is_topk(chart) -> bool:
    return len(chart.traces) == 1 and chart.traces[0].get("type") == "bar" and chart.traces[0].get("orientation") == "h"


def test_side_by_side_grid_shows_vac_predict_for_each_model(server, page):
    page.goto(f"{server}/side-by-side?{SIDE}")
    page.wait_for_selector("text=done: 2 models")
    wait_idle(page)
    charts = read_charts(page)
    bars = [c.traces[0] for c in charts if is_topk(c)]
    maps = [c for c in charts if c.of_type("heatmap")]
    assert len(bars) == 2 and len(maps) == 2
    clip = ASSETS / "moving_square.mp4"
    for shown, (preset, overrides) in zip(bars, [("timesformer_base", {"depth": 2, "img_size": 64}),
                                                  ("mvit_v2_s", {"depths": (1, 1, 1, 1), "num_frames": 4,
                                                                 "img_size": 64})]):
        expected = vac.predict(preset, clip, overrides=overrides, device="cpu", top_k=3)
        assert list(shown["y"])[::-1] == [p["label"] for p in expected.predictions]
        np.testing.assert_allclose(as_array(shown["x"])[::-1], [p["probability"] for p in expected.predictions],
                                   rtol=RTOL, atol=0)
    assert all(len(m.of_type("heatmap")) == 4 for m in maps)  # the same 4 moments for each model
    assert_no_exception(page)
    shoot(page, "side_by_side")


# ------------------------------------------------------------------------------------------------ tour

TOUR = [  # README image, link, what the page shows when it is ready (a selector)
    ("model", "/?model=mvit_v2_s", "text=parameters"),
    ("run", "/run?model=timesformer_base&depth=2&img_size=64&clip=rotating_bar", "text=Frames the model sees"),
    ("attention", "/attention?model=swin3d_t&num_frames=8&depths=2,2,2,2&img_size=112&layer=layers.0.blocks.1.attn"
                  "&query=1,5,5", "text=cyclic shift undone"),
    ("compare", "/compare?c1=timesformer_base&c2=mvit_v2_s&c3=swin3d_t", ".js-plotly-plot"),
    ("presets", "/presets", '[data-testid="stDataFrame"]'),
]


@pytest.mark.parametrize("name,link,ready", TOUR, ids=[t[0] for t in TOUR])
def test_tour_pages_render(server, page, name, link, ready):
    page.goto(server + link)
    page.wait_for_selector(ready)
    if name == "presets":  # a plain table: no share link
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    else:
        wait_idle(page)
    assert_no_exception(page)
    shoot(page, name)


def test_fresh_server_lists_the_new_pages(page, tmp_path):
    with ServedApp(tmp_path) as fresh:
        page.goto(fresh.url + "/zoo?dataset=ssv2")
        wait_idle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Zoo" in nav and "Side by side" in nav
        assert page.url.split("?")[0].endswith("/zoo") and "dataset=ssv2" in page.url
        assert_no_exception(page)
