"""Page state in a real browser (``streamlit run``, headless Chromium through Playwright): keys pressed faster than
the runs end reach the server with the address bar of an earlier run, which must not read as a link the user
opened (that reset the page to a sample clip and lost the presses)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("browser_support")
from browser_support import assert_no_exception, find_chart, wait_idle

pytest_plugins = ["browser_support"]  # a failing test's report shows the server log's tail
pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def is_topk(chart) -> bool:
    return len(chart.traces) == 1 and chart.traces[0].get("type") == "bar" and chart.traces[0].get("orientation") == "h"


def wait_for_topk(page, k: int, timeout_s: float = 45) -> None:
    """Until the address bar says top-k ``k`` (or the time is up: the assertions that follow say what is wrong),
    then until the runs have ended."""
    deadline = time.monotonic() + timeout_s
    while not re.search(rf"[?&]topk={k}(&|$)", page.url) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    wait_idle(page)


def test_an_uploaded_clip_survives_quick_presses_on_the_top_k_slider(server, page):
    page.goto(f"{server}/run?model=timesformer_base&depth=2&img_size=64")
    page.wait_for_selector("text=Random weights")
    wait_idle(page)
    page.get_by_text("upload a clip", exact=True).click()
    page.wait_for_selector('[data-testid="stFileUploader"]')
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(ASSETS / "flash.mp4"))
    page.wait_for_url(re.compile(r".*clip=upload.*"))
    wait_idle(page)
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="top-k").locator('input[type="range"]')
    k = int(slider.input_value())
    for _ in range(3):  # three bursts of five quick presses, each burst while the runs it starts are under way
        slider.focus()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        k = min(k + 5, 20)
        wait_for_topk(page, k)
        body = page.inner_text("body")
        assert "ignored" not in body, body[:2000]
        assert "uploaded clip:" in body
        assert int(slider.input_value()) == k
        assert re.search(rf"[?&]topk={k}(&|$)", page.url) and "clip=upload" in page.url, page.url
    bars = find_chart(page, "top-k predictions", lambda c: is_topk(c) and len(c.traces[0]["y"]) == k).traces[0]
    assert len(bars["y"]) == k
    assert_no_exception(page)


def choose(page, box, option: str, tries: int = 5) -> None:
    """Pick ``option`` in a select box (a click on a box being redrawn may not open its list: open it again)."""
    for _ in range(tries):
        box.locator("input").click()
        try:
            page.get_by_role("option", name=option).click(timeout=5_000)
            return
        except Exception:  # playwright's TimeoutError: the list did not open
            page.keyboard.press("Escape")
    pytest.fail(f"the option {option!r} never showed")


def test_the_layer_box_shows_the_new_models_label_after_a_model_change(server, page):
    """A select box keeps the label it shows until the app sends another: the divided model's "(space)" stayed
    on the joint model's layer."""
    page.goto(f"{server}/attention?model=timesformer_base&depth=2&img_size=64")
    page.wait_for_selector("text=token grid")
    wait_idle(page)
    layer = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("layer", exact=True))
    assert layer.locator("input").input_value() == "blocks.1.attn (space)"
    sidebar = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
    choose(page, sidebar.filter(has=page.get_by_text("attention_type", exact=True)), "joint_space_time")
    page.wait_for_url(re.compile(r".*attention_type=joint_space_time.*"))
    wait_idle(page)
    assert layer.locator("input").input_value() == "blocks.1.attn (joint)"
    assert_no_exception(page)
