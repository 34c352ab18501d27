"""What the browser tests share: the app served by ``streamlit run`` with its output in a log file, and the
Plotly charts of a page read back as numbers.

Loaded by ``tests/test_browser.py`` as a pytest plugin (its ``pytest_plugins``), so that a failing browser test
shows the tail of the server's log in its report.

Charts are read from the page, not from the app's code: every ``.js-plotly-plot`` element is a Plotly graph div
whose ``data`` and ``layout`` are what the browser draws. Plotly sends NumPy arrays as typed-array specs
(``{"dtype": "f8", "bdata": <base64>, "shape": "4, 4"}``), which :func:`as_array` decodes bit for bit.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_LINES = 60

#: every app started in this process, for the failure report
_APPS: list["ServedApp"] = []
_TEST_STARTED = {"at": 0.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """``streamlit run app.py`` on a free port of 127.0.0.1, its stdout and stderr written to ``log_dir/streamlit.log``
    (a file, never a pipe: a pipe nobody reads fills up and stalls the server). Use as a context manager: the
    server is always stopped afterwards; a server that does not become healthy fails the test with its log's tail."""

    def __init__(self, log_dir: Path):
        self.log_path = Path(log_dir) / "streamlit.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started_at = 0.0
        self.proc: subprocess.Popen | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "ServedApp":
        env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
                 "--server.address", "127.0.0.1", "--server.headless", "true"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _APPS.append(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_healthy(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return
            except OSError:
                pass
            if not self.alive or time.monotonic() > deadline:
                state = "exited" if not self.alive else "still starting"
                pytest.fail(f"streamlit did not become healthy on {self.url} ({state}); {self.log_path}:\n"
                            f"{self.log_tail()}")
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------------ plugin hooks

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _TEST_STARTED["at"] = time.monotonic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test's report carries the tail of the log of each server it used: those still running
    and those it started itself."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or item.get_closest_marker("browser") is None:
        return
    for app in _APPS:
        if app.alive or app.started_at >= _TEST_STARTED["at"]:
            report.sections.append((f"streamlit server log {app.log_path} (last {LOG_TAIL_LINES} lines)",
                                    app.log_tail()))


# ------------------------------------------------------------------------------------------------ charts

_READ_CHARTS = """() => {
  const keep = ['type', 'name', 'orientation', 'x', 'y', 'z', 'values', 'labels', 'ids', 'parents', 'text',
                'zmin', 'zmax'];
  const plain = v => ArrayBuffer.isView(v) ? Array.from(v)
                   : Array.isArray(v) ? v.map(plain)
                   : (v && typeof v === 'object' && 'bdata' in v) ? {dtype: v.dtype, bdata: v.bdata, shape: v.shape}
                   : v;
  const text = t => t == null ? null : (typeof t === 'object' ? (t.text ?? null) : String(t));
  return [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
    title: text(gd.layout && gd.layout.title),
    xaxis: text(gd.layout && gd.layout.xaxis && gd.layout.xaxis.title),
    barmode: (gd.layout && gd.layout.barmode) || null,
    traces: (gd.data || []).map(t => {
      const out = {};
      for (const k of keep) if (k in t) out[k] = plain(t[k]);
      out.colorbar = text(t.colorbar && t.colorbar.title);
      return out;
    }),
  }));
}"""


@dataclass
class Chart:
    """One Plotly chart of the page as the browser holds it."""

    title: str
    xaxis: str
    barmode: str | None
    traces: list[dict[str, Any]]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [t for t in self.traces if t.get("type") == kind]

    def describe(self) -> str:
        kinds = ",".join(sorted({str(t.get("type")) for t in self.traces}))
        return f"{self.title!r} ({len(self.traces)} traces: {kinds})"


def _plain_text(html: str | None) -> str:
    return re.sub(r"<[^>]+>", "", html or "").strip()


def read_charts(page) -> list[Chart]:
    return [Chart(_plain_text(c["title"]), _plain_text(c["xaxis"]), c["barmode"], c["traces"])
            for c in page.evaluate(_READ_CHARTS)]


def find_chart(page, what: str, match: Callable[[Chart], bool], timeout_s: float = 30) -> Chart:
    """The one chart of the page that ``match`` picks (``what`` names it in the failure message)."""
    deadline = time.monotonic() + timeout_s
    while True:
        charts = read_charts(page)
        found = [c for c in charts if match(c)]
        if len(found) == 1:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"expected one {what} chart, found {len(found)} among: "
                        + "; ".join(c.describe() for c in charts))
        time.sleep(0.25)


def as_array(value: Any, dtype=np.float64) -> np.ndarray:
    """A trace's array as NumPy: a typed-array spec decoded exactly, a JSON list with ``null`` as NaN."""
    if isinstance(value, dict) and "bdata" in value:
        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape is not None:
            shape = [int(s) for s in (shape.split(",") if isinstance(shape, str) else shape)]
            raw = raw.reshape(shape)
        return raw.astype(dtype)
    if dtype is object:
        return np.asarray(value, dtype=object)

    def nan_for_none(v):
        return [nan_for_none(x) for x in v] if isinstance(v, list) else (np.nan if v is None else v)

    return np.asarray(nan_for_none(value), dtype=dtype)


def assert_same_map(shown: np.ndarray, expected: np.ndarray, what: str, rtol: float = 1e-6) -> None:
    """Equal shapes, NaN (cannot be attended) in the same cells, equal values elsewhere."""
    expected = np.asarray(expected, dtype=np.float64)
    assert shown.shape == expected.shape, f"{what}: shape {shown.shape} shown, {expected.shape} computed"
    assert np.array_equal(np.isnan(shown), np.isnan(expected)), f"{what}: the unattended cells differ"
    np.testing.assert_allclose(shown, expected, rtol=rtol, atol=0, equal_nan=True, err_msg=what)


# ------------------------------------------------------------------------------------------------ fixtures

CHROMIUM = os.environ.get("VIDEOATTN_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app served by ``streamlit run`` on 127.0.0.1 (one per test module), its output in a log file."""
    with ServedApp(tmp_path_factory.mktemp("streamlit")) as app:
        yield app.url


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright."""
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
    """A page in a fresh browser context: no session, no cookies."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def wait_idle(page) -> None:
    """Until the script run has finished (the app root carries the script's run state) and the page has written
    its last element, the share box."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=TIMEOUT_MS)
    page.wait_for_selector("text=Share this view", timeout=TIMEOUT_MS)


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body")
