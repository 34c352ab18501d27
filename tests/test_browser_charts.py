"""Charts and state as a user sees them in a real browser (``streamlit run`` + headless Chromium), issue 27
items 2 and 4 (the tables' thousands separators are checked in tests/test_number_formats.py: the data grid
draws on a canvas and its accessible table holds the raw numbers, not the text drawn):

- a chart's title fits its chart (the side-by-side top-k titles were cut off at the column's edge): the title's
  drawn box, measured in the page;
- a Grad-CAM layer the model does not have is replaced visibly, naming the layer asked for and the one used;
- the attention rollout (it captures every layer) waits to be asked again after a model change, like the
  explanations and the head statistics.
"""

from __future__ import annotations

import re

import pytest

pytest.register_assert_rewrite("browser_support")
from browser_support import TIMEOUT_MS, assert_no_exception, read_charts, wait_idle

pytest_plugins = ["browser_support"]
pytestmark = pytest.mark.browser

#: each chart's width and its title's drawn box, in the page's pixels
_TITLE_BOXES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const chart = gd.getBoundingClientRect();
  const title = gd.querySelector('.gtitle');
  const box = title ? title.getBoundingClientRect() : null;
  return {text: title ? title.textContent : null, chart: [chart.left, chart.right],
          title: box ? [box.left, box.right] : null};
})"""

SIDE = ("m1=timesformer_base;depth=2;img_size=64&m2=mvit_v2_s;depths=1,1,1,1;num_frames=4;img_size=64"
        "&clip=moving_square&topk=3")


def test_side_by_side_titles_fit_their_charts(server, page):
    page.goto(f"{server}/side-by-side?{SIDE}")
    page.wait_for_selector("text=done: 2 models", timeout=TIMEOUT_MS)
    wait_idle(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .gtitle').length >= 4")
    boxes = page.evaluate(_TITLE_BOXES)
    titled = [b for b in boxes if b["title"] is not None and b["text"]]
    assert len(titled) >= 4, boxes  # two models: a top-k chart and a map each
    assert any(b["text"].startswith("top-3") for b in titled), boxes
    for b in titled:
        (left, right), (title_left, title_right) = b["chart"], b["title"]
        assert title_left >= left - 1 and title_right <= right + 1, \
            f"title {b['text']!r} drawn over {title_left:.0f}-{title_right:.0f} px, its chart {left:.0f}-{right:.0f}"
    assert_no_exception(page)


ATTENTION = "/attention?model=timesformer_base&depth=2&img_size=64"


def test_a_gradcam_layer_the_model_lacks_is_replaced_with_a_note(server, page):
    page.goto(f"{server}{ATTENTION}&explain=gradcam&camlayer=blocks.7")
    page.wait_for_selector("text=gradcam for", timeout=TIMEOUT_MS)
    wait_idle(page)
    body = page.inner_text("body")
    notes = [line for line in body.splitlines() if "blocks.7" in line]
    assert notes and any("blocks.0" in line for line in notes), f"no note naming blocks.7 and blocks.0: {notes}"
    layer = page.get_by_role("combobox", name="Grad-CAM layer", exact=True)
    assert layer.input_value() == "blocks.0"
    assert_no_exception(page)


def is_rollout(chart) -> bool:
    return any(t.get("colorbar") == "rollout" for t in chart.of_type("heatmap"))


def test_the_rollout_waits_to_be_asked_again_after_a_model_change(server, page):
    page.goto(f"{server}{ATTENTION}&rollout=on")
    page.wait_for_selector("text=CLS attention rolled out", timeout=TIMEOUT_MS)
    wait_idle(page)
    assert sum(map(is_rollout, read_charts(page))) == 1
    # another model: img_size 64 → 32 in the sidebar
    size = page.locator('[data-testid="stSidebar"] [data-testid="stNumberInput"]').filter(
        has=page.get_by_text("img_size", exact=True)).locator("input")
    size.fill("32")
    size.press("Enter")
    page.wait_for_url(re.compile(r".*img_size=32.*"), timeout=TIMEOUT_MS)
    wait_idle(page)
    assert not any(map(is_rollout, read_charts(page))), "the rollout ran again for the new model unasked"
    assert "rollout=on" not in page.url
    assert page.get_by_text(re.compile("rollout was turned off for the new model")).count() == 1
    # on demand, for the current model
    page.get_by_role("radiogroup", name=re.compile("CLS attention rolled out")).get_by_text("on", exact=True).click()
    page.wait_for_url(re.compile(r".*rollout=on.*"), timeout=TIMEOUT_MS)
    wait_idle(page)
    assert sum(map(is_rollout, read_charts(page))) == 1
    assert_no_exception(page)
