"""The app in a real browser: ``streamlit run`` on 127.0.0.1, headless Chromium through Playwright.

Opens share links (a model, an attention view), changes a hyperparameter, uploads a sample clip, and checks that
the Plotly charts and the expected numbers appear and that no exception is shown. Screenshots of every page go
to ``test-artifacts/screenshots/`` (git-ignored; the folder is printed).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import videoattn_core as vac
from videoattn_core import figures

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("VIDEOATTN_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app():
    """The app served by ``streamlit run`` on a free port of 127.0.0.1; always stopped afterwards."""
    port = _free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"streamlit did not become healthy on {base}: {out[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server():
    with served_app() as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    import playwright.sync_api as playwright_api  # a dev requirement: missing means a broken install, not a skip

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})  # a fresh browser: no session
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture(scope="module", autouse=True)
def screenshots_folder():
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SHOTS}")
    return SHOTS


def wait_idle(page) -> None:
    """Until the script run has finished (the app root carries the script's run state)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=TIMEOUT_MS)
    page.wait_for_selector("text=Share this view")  # the last element every page writes


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body")


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


def test_model_share_link_then_a_hyperparameter_change(server, page):
    expected = vac.summarize("mvit_v2_s")
    page.goto(f"{server}/?model=mvit_v2_s")
    page.wait_for_selector(f'[data-testid="stMetricValue"]:has-text("{expected.params:,}")')
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    assert page.locator(".js-plotly-plot").count() >= 4  # breakdown, categories, two growth curves
    assert metric_value(page, "MACs per view") == figures.human(expected.macs)
    assert_no_exception(page)
    shoot(page, "model_mvit_v2_s")

    # a hyperparameter typed in the sidebar updates the numbers and the URL
    box = page.get_by_role("spinbutton", name="img_size", exact=True)
    box.fill("256")
    box.press("Enter")
    bigger = vac.summarize("mvit_v2_s", img_size=256)
    page.wait_for_selector(f'[data-testid="stMetricValue"]:has-text("{figures.human(bigger.macs)}")')
    page.wait_for_url(re.compile(r".*img_size=256.*"))
    wait_idle(page)
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


def test_attention_share_link(server, page):
    link = ("/attention?model=timesformer_base&depth=2&img_size=64&layer=blocks.0.temporal_attn&head=1"
            "&query=3,2,1&frame=3&rollout=on")
    page.goto(server + link)
    page.wait_for_selector("text=temporal attention at patch")
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    assert page.locator(".js-plotly-plot").count() >= 4  # the frame, the T×T matrix, every frame, the rollout
    assert "kind time" in page.inner_text("body")
    assert_no_exception(page)
    shoot(page, "attention_timesformer_temporal")

    page.goto(server + "/attention?model=swin3d_t&num_frames=8&depths=2,2,2,2&img_size=112"
                       "&layer=layers.0.blocks.1.attn&query=1,5,5")
    page.wait_for_selector("text=cyclic shift undone")
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    assert_no_exception(page)
    shoot(page, "attention_swin_window")

    page.goto(server + "/attention?model=mvit_v2_s&num_frames=8&depths=1,1,1,1&layer=blocks.1.attn")
    page.wait_for_selector("text=key/value grid")
    wait_idle(page)
    assert_no_exception(page)
    shoot(page, "attention_mvit_pooled")


def test_run_page_with_an_uploaded_clip(server, page):
    # the model chosen by a link on the Model page travels to the Run page through the navigation
    page.goto(f"{server}/?model=timesformer_base&depth=2&img_size=64")
    page.wait_for_selector('[data-testid="stMetric"]')
    wait_idle(page)
    page.get_by_role("link", name="Run").click()
    page.wait_for_selector("text=Frames the model sees")
    page.wait_for_url(re.compile(r".*/run\?.*depth=2.*"))
    wait_idle(page)
    page.get_by_text("upload a clip", exact=True).click()
    page.wait_for_selector('[data-testid="stFileUploader"]')
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        str(ROOT / "assets" / "flash.mp4"))
    page.wait_for_selector("text=uploaded clip:")
    page.wait_for_url(re.compile(r".*clip=upload.*"))
    wait_idle(page)
    page.wait_for_selector("text=Random weights")
    assert page.locator(".js-plotly-plot").count() >= 4  # frames, top-k, times, MACs
    assert "cannot travel in a link" in page.inner_text("body")
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


def test_first_visitor_of_a_fresh_server_opening_a_page_link_gets_the_router(page):
    """A share link to a page is often the first request a server sees; it must go through app.py's
    navigation, not Streamlit's pages-directory fallback (which would list pages/_common.py as a page)."""
    with served_app() as fresh:
        page.goto(fresh + "/attention?model=timesformer_base&depth=2&img_size=64&layer=blocks.0.attn")
        page.wait_for_selector("text=Share this view")
        wait_idle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert [w for w in ("Model", "Run", "Attention", "Compare", "Presets") if w not in nav] == []
        assert "common" not in nav and "app" not in nav.split()
        assert page.url.split("?")[0].endswith("/attention")
        assert "layer=blocks.0.attn" in page.url
        assert_no_exception(page)
