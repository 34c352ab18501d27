"""How fast the Model page answers a hyperparameter change, measured in a real browser.

    .venv/bin/python bench/app_response.py [--presets timesformer_hr timesformer_l swin3d_l mvit_v2_b] [--repeats 3]

Serves the app with ``streamlit run`` on 127.0.0.1, opens ``/?model=<preset>`` in headless Chromium (Playwright),
then types a new ``img_size`` into the sidebar and presses Enter. Two times are taken from the key press:

- ``numbers``: until the "MACs per view" metric shows the new config's value (computed here beforehand with
  ``vac.summarize``), i.e. what the user waits for to see the updated numbers;
- ``page``: until the script run has finished (the per-layer table, the breakdown and the growth curves, which
  summarise the config at several frame counts and sizes, are drawn too).

Each change is to a config the app has not seen (a cold summary cache); one more change back to the preset's own
size shows the warm case. Results go to stdout and ``bench/results/app_response.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import videoattn_core as vac  # noqa: E402
from videoattn_core import figures  # noqa: E402

CHROMIUM = os.environ.get("VIDEOATTN_CHROMIUM", "/usr/bin/chromium")
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def serve() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("streamlit did not start")


def macs_text(preset: str, **overrides) -> str:
    return figures.human(vac.summarize(preset, **overrides).macs)


def wait_metric(page, text: str) -> None:
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('[data-testid="stMetric"]')]
              .some(m => m.innerText.includes('MACs per view') &&
                         m.querySelector('[data-testid="stMetricValue"]').innerText.trim() === text)""",
        arg=text, polling="raf", timeout=180_000)


def change(page, size: int, expected: str) -> dict[str, float]:
    box = page.get_by_role("spinbutton", name="img_size", exact=True)
    box.fill(str(size))
    start = time.perf_counter()
    box.press("Enter")
    wait_metric(page, expected)
    numbers = time.perf_counter() - start
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state') "
        "=== 'notRunning' && document.body.innerText.includes('Share this view')", polling="raf", timeout=180_000)
    return {"img_size": size, "numbers_s": round(numbers, 3), "page_s": round(time.perf_counter() - start, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["timesformer_hr", "timesformer_l", "swin3d_l", "mvit_v2_b"])
    parser.add_argument("--repeats", type=int, default=3, help="cold changes per preset")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    proc, base = serve()
    results = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            for preset in args.presets:
                page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
                size0 = int(vac.get_preset(preset).config.img_size)
                start = time.perf_counter()
                page.goto(f"{base}/?model={preset}")
                wait_metric(page, macs_text(preset))
                page.wait_for_selector(IDLE, timeout=180_000)
                first = time.perf_counter() - start
                cold = [change(page, size0 + 32 * (i + 1), macs_text(preset, img_size=size0 + 32 * (i + 1)))
                        for i in range(args.repeats)]
                warm = change(page, size0, macs_text(preset))
                row = {"preset": preset, "first_open_s": round(first, 3), "cold": cold, "warm": warm,
                       "numbers_median_s": statistics.median(c["numbers_s"] for c in cold),
                       "page_median_s": statistics.median(c["page_s"] for c in cold)}
                results.append(row)
                print(f"{preset:16s} first open {first:6.2f} s | change img_size → numbers "
                      f"{row['numbers_median_s']:.2f} s (median of {len(cold)}: "
                      f"{', '.join(str(c['numbers_s']) for c in cold)}), whole page {row['page_median_s']:.2f} s | "
                      f"back to a seen config: numbers {warm['numbers_s']:.2f} s, page {warm['page_s']:.2f} s",
                      flush=True)
                page.context.close()
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = ROOT / "bench" / "results" / "app_response.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
