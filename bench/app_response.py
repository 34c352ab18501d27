"""How fast the Model page opens and answers a hyperparameter change, measured in a real browser.

    .venv/bin/python bench/app_response.py [--presets all | timesformer_hr swin3d_l ...] [--repeats 3]
                                           [--cache-dir DIR] [--warmed] [--returning]
                                           [--changes-for all | timesformer_hr ...] [--server-side]

Serves the app with ``streamlit run`` on 127.0.0.1 and opens ``/?model=<preset>`` for every preset (``all``, the
default) in a new browser context of headless Chromium (Playwright): the **first render** is timed from the
navigation until the "MACs per view" metric shows the preset's value (``first_numbers_s``) and until the script
run has finished (``first_page_s``: the numbers and the page's first section, the layer table). A new context is a
first-time visitor (nothing in the browser's cache); ``--returning`` opens every preset in one context instead, as
a visitor who has used the app before (its scripts cached and compiled). Then the growth section is opened:
``growth_section_s`` runs until its two charts are drawn. One untimed visit to a small config comes first (a
running server has imported the app's modules). The server is started once and stays up (a running server),
without its background warm-up; its disk cache of summaries is ``--cache-dir`` (default: a fresh temporary folder,
i.e. nothing computed before this run). ``--warmed`` first fills that cache as the app's warm-up process does
(``python -m videoattn_core.inspection.summary_cache``, timed) and so measures a server that has been up a while.

Then, for the presets of ``--changes-for``, it types a new ``img_size`` (``start_out_channels`` for FIERY, which
has no image size) into the sidebar and presses Enter. Two
times are taken from the key press:

- ``numbers``: until the "MACs per view" metric shows the new config's value (computed here beforehand with
  ``vac.summarize``), i.e. what the user waits for to see the updated numbers;
- ``page``: until the script run has finished (the layer table and the memory estimate drawn too).

One more change back to the preset's own size shows the warm case, and a last one to an unseen size is made with
the growth section open (``growth_change``: until its curves, ten more summaries, are drawn).

``--server-side`` runs the same visits and changes without a browser, through Streamlit's ``AppTest`` in this
process (its caches are process-wide, as a server's are): the script run's wall time and the process's CPU time
(``time.process_time``, which the other programs on a shared machine do not inflate), for the first render and
for each change. Those are the server's share of the times above; the rest is the browser's (loading the frontend,
drawing the charts).

Each timed change but the one back is to a config the app has not seen (a cold summary cache). Results go to stdout and ``bench/results/app_response.json``, as seconds and as ratios
to the goals of issue 13 (:data:`GOALS`; a ratio ≤ 1 meets the goal).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import videoattn_core as vac  # noqa: E402
from videoattn_core import figures  # noqa: E402
from served_app import serve  # noqa: E402  (bench/, the script's folder)

CHROMIUM = os.environ.get("VIDEOATTN_CHROMIUM", "/usr/bin/chromium")
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
#: issue 13's goals, seconds: first render of ``/?model=PRESET``, numbers and whole page after a change
GOALS = {"first_page_s": 3.0, "numbers_s": 0.5, "page_s": 1.5}
CHANGES_FOR = ["timesformer_base", "timesformer_hr", "mvit_v2_b", "swin3d_l", "vjepa2_vitl"]


def macs_text(preset: str, **overrides) -> str:
    return figures.human(vac.summarize(preset, **overrides).macs)


def changed_field(preset: str) -> tuple[str, int, int]:
    """The hyperparameter a timed change types into the sidebar, its preset value and the step between the new
    values: ``img_size`` by 32 pixels, or, for FIERY's temporal model (feature maps, no image size), the width of
    its first temporal block, ``start_out_channels``, by 16."""
    config = vac.get_preset(preset).config
    if hasattr(config, "img_size"):
        return "img_size", int(config.img_size), 32
    return "start_out_channels", int(config.start_out_channels), 16


def wait_metric(page, text: str) -> None:
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('[data-testid="stMetric"]')]
              .some(m => m.innerText.includes('MACs per view') &&
                         m.querySelector('[data-testid="stMetricValue"]').innerText.trim() === text)""",
        arg=text, polling="raf", timeout=180_000)


def wait_idle(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state') "
        "=== 'notRunning' && document.body.innerText.includes('Share this view')", polling="raf", timeout=180_000)


def wait_curves(page) -> None:
    """Until both growth charts ("MACs against frames", "MACs against pixels per side") are drawn by this run (not
    left stale from the last one) and the script run has finished."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-stale="false"] .js-plotly-plot .gtitle')]
              .filter(e => e.textContent.startsWith('MACs against')).length >= 2 &&
              document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') ===
              'notRunning'""", polling="raf", timeout=180_000)


def change(page, field: str, value: int, expected: str, curves: bool = False) -> dict[str, float]:
    box = page.get_by_role("spinbutton", name=field, exact=True)
    box.fill(str(value))
    start = time.perf_counter()
    box.press("Enter")
    wait_metric(page, expected)
    numbers = time.perf_counter() - start
    wait_idle(page)
    out = {field: value, "numbers_s": round(numbers, 3), "page_s": round(time.perf_counter() - start, 3)}
    if curves:
        wait_curves(page)
        out["curves_s"] = round(time.perf_counter() - start, 3)
    return out


def open_section(page, label: str, curves: bool = False) -> float:
    """Seconds from a click on the page's section ``label`` until its script run has finished (and, with
    ``curves``, the growth charts are drawn)."""
    start = time.perf_counter()
    page.get_by_role("radio", name=label, exact=True).click()
    page.wait_for_function(
        "(label) => [...document.querySelectorAll('[role=radio][aria-checked=true]')].some(e => e.innerText.trim() "
        "=== label)", arg=label, polling="raf", timeout=180_000)
    (wait_curves if curves else wait_idle)(page)
    return round(time.perf_counter() - start, 3)


def first_render(page, base: str, preset: str) -> dict[str, float]:
    expected = macs_text(preset)  # computed before the clock starts: it takes this process seconds of CPU
    start = time.perf_counter()
    page.goto(f"{base}/?model={preset}")
    wait_metric(page, expected)
    numbers = time.perf_counter() - start
    wait_idle(page)
    whole = time.perf_counter() - start
    growth = open_section(page, "How the cost grows", curves=True)
    open_section(page, "Layers")
    return {"first_numbers_s": round(numbers, 3), "first_page_s": round(whole, 3), "growth_section_s": growth}


def ratios(row: dict) -> dict[str, float]:
    out = {"first_page": round(row["first_page_s"] / GOALS["first_page_s"], 3)}
    if "numbers_median_s" in row:
        out["numbers"] = round(row["numbers_median_s"] / GOALS["numbers_s"], 3)
        out["page"] = round(row["page_median_s"] / GOALS["page_s"], 3)
    return out


def _sidebar_widget(at, key: str):
    for kind in ("slider", "number_input"):
        for widget in getattr(at.sidebar, kind):
            if widget.key == key:
                return widget
    raise KeyError(key)


def _timed_run(at) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    at.run()
    out = {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}
    if at.exception:
        raise SystemExit(f"the page raised: {[e.value for e in at.exception]}")
    return out


def _shown_macs(at) -> str:
    return next(m.value for m in at.metric if m.label == "MACs per view")


def server_side(presets: list[str], changes_for: list[str], repeats: int) -> list[dict]:
    """First render and hyperparameter changes (:func:`changed_field`) as script runs in this process (AppTest),
    wall and CPU seconds."""
    from streamlit.testing.v1 import AppTest

    app = str(ROOT / "app.py")
    at = AppTest.from_file(app, default_timeout=600)
    at.query_params.update({"model": "timesformer_base", "depth": "1", "img_size": "32", "num_frames": "2"})
    at.run()  # imports, as a running server has done them
    results = []
    for preset in presets:
        at = AppTest.from_file(app, default_timeout=600)
        at.query_params.update({"model": preset})
        first = _timed_run(at)
        assert _shown_macs(at) == macs_text(preset), preset
        row = {"preset": preset, "first_page_s": first["wall_s"], "first_page_cpu_s": first["cpu_s"]}
        if preset in changes_for:
            field, value0, step = changed_field(preset)
            cold = []
            for i in range(repeats):
                value = value0 + step * (i + 1)
                _sidebar_widget(at, f"model:hp.{preset}.{field}").set_value(value)
                cold.append({field: value, **_timed_run(at)})
                assert _shown_macs(at) == macs_text(preset, **{field: value}), (preset, field, value)
            _sidebar_widget(at, f"model:hp.{preset}.{field}").set_value(value0)
            warm = _timed_run(at)
            row.update({"cold": cold, "warm": warm, "page_median_s": statistics.median(c["wall_s"] for c in cold),
                        "page_median_cpu_s": statistics.median(c["cpu_s"] for c in cold)})
        row["ratio_to_goal"] = {"first_page_cpu": round(row["first_page_cpu_s"] / GOALS["first_page_s"], 3)}
        if "page_median_cpu_s" in row:
            row["ratio_to_goal"]["page_cpu"] = round(row["page_median_cpu_s"] / GOALS["page_s"], 3)
        print(f"{preset:24s} server side: first render {row['first_page_s']:.2f} s (CPU {row['first_page_cpu_s']:.2f} s)"
              + (f" | change {changed_field(preset)[0]} → page {row['page_median_s']:.2f} s (CPU {row['page_median_cpu_s']:.2f} s); "
                 f"back to a seen config {row['warm']['wall_s']:.2f} s (CPU {row['warm']['cpu_s']:.2f} s)"
                 if "cold" in row else "") + f" | ratios to goals {row['ratio_to_goal']}", flush=True)
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["all"], help="presets to open (default: all)")
    parser.add_argument("--changes-for", nargs="*", default=CHANGES_FOR,
                        help="presets whose img_size (FIERY: start_out_channels) is changed after the first render, "
                             "or all (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="cold changes per preset")
    parser.add_argument("--cache-dir", default=None, help="the server's disk cache (default: a fresh temporary "
                                                          "folder)")
    parser.add_argument("--server-side", action="store_true", help="script runs through AppTest, no browser: "
                                                                       "wall and CPU seconds")
    parser.add_argument("--returning", action="store_true", help="every preset in one browser context (a visitor "
                                                                     "whose browser has the app's scripts cached)")
    parser.add_argument("--warmed", action="store_true", help="fill the disk cache as the app's warm-up does "
                                                                  "before serving")
    args = parser.parse_args()
    presets = vac.list_models() if args.presets == ["all"] else args.presets
    if args.changes_for == ["all"]:
        args.changes_for = presets

    from playwright.sync_api import sync_playwright

    tmp = None if args.cache_dir else tempfile.TemporaryDirectory(prefix="videoattn-bench-cache-")
    cache_dir = args.cache_dir or tmp.name
    warm_up_s = None
    if args.warmed:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "videoattn_core.inspection.summary_cache", *presets], cwd=ROOT,
                       check=True, env={**os.environ, "VIDEOATTN_CACHE_DIR": cache_dir})
        warm_up_s = round(time.perf_counter() - start, 1)
        print(f"warm-up of {len(presets)} presets: {warm_up_s} s", flush=True)
    if args.server_side:
        os.environ.update({"VIDEOATTN_CACHE_DIR": cache_dir, "VIDEOATTN_PREWARM": "0"})
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        results = server_side(presets, args.changes_for, args.repeats)
        if tmp is not None:
            tmp.cleanup()
        out = ROOT / "bench" / "results" / "app_response_server.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"cpu_count": os.cpu_count(), "goals_s": GOALS, "warmed": args.warmed,
                                   "warm_up_s": warm_up_s, "results": results}, indent=1))
        print(f"written {out}")
        return
    proc, base = serve(cache_dir, Path(tempfile.gettempdir()) / "videoattn_app_response.log")
    results = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            # one visitor before the timed ones, on a config no timed visit shows: a running server has imported
            # the app's modules (torch, Plotly, the core) already
            page = browser.new_context().new_page()
            page.goto(f"{base}/?model=timesformer_base&depth=1&img_size=32&num_frames=2")
            wait_metric(page, macs_text("timesformer_base", depth=1, img_size=32, num_frames=2))
            wait_idle(page)
            page.context.close()
            returning = browser.new_context(viewport={"width": 1500, "height": 1000}) if args.returning else None
            for preset in presets:
                page = (returning or browser.new_context(viewport={"width": 1500, "height": 1000})).new_page()
                row = {"preset": preset, **first_render(page, base, preset)}
                line = (f"{preset:24s} first render: numbers {row['first_numbers_s']:6.2f} s, page "
                        f"{row['first_page_s']:6.2f} s; growth section opened {row['growth_section_s']:6.2f} s")
                if preset in args.changes_for:
                    field, value0, step = changed_field(preset)
                    values = [value0 + step * (i + 1) for i in range(args.repeats + 1)]
                    cold = [change(page, field, value, macs_text(preset, **{field: value})) for value in values[:-1]]
                    warm = change(page, field, value0, macs_text(preset))
                    # one more unseen value with the growth section open: its curves are ten more summaries
                    open_section(page, "How the cost grows", curves=True)
                    growth = change(page, field, values[-1], macs_text(preset, **{field: values[-1]}), curves=True)
                    row.update({"cold": cold, "warm": warm, "growth_change": growth,
                                "numbers_median_s": statistics.median(c["numbers_s"] for c in cold),
                                "page_median_s": statistics.median(c["page_s"] for c in cold)})
                    line += (f" | change {field} → numbers {row['numbers_median_s']:.2f} s (median of {len(cold)}: "
                             f"{', '.join(str(c['numbers_s']) for c in cold)}), whole page "
                             f"{row['page_median_s']:.2f} s | back to a seen config: numbers {warm['numbers_s']:.2f} s, "
                             f"page {warm['page_s']:.2f} s | with the growth section open: numbers "
                             f"{growth['numbers_s']:.2f} s, curves {growth['curves_s']:.2f} s")
                row["ratio_to_goal"] = ratios(row)
                results.append(row)
                print(line + f" | ratios to goals {row['ratio_to_goal']}", flush=True)
                page.close() if returning else page.context.close()
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if tmp is not None:
            tmp.cleanup()
    worst = {k: max((r["ratio_to_goal"][k] for r in results if k in r["ratio_to_goal"]), default=None)
             for k in ("first_page", "numbers", "page")}
    print(f"worst ratio to goal (≤ 1 meets it): {worst}")
    out = ROOT / "bench" / "results" / "app_response.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "goals_s": GOALS, "cache_dir": args.cache_dir or
                               "fresh temporary folder", "warmed": args.warmed, "returning": args.returning,
                               "warm_up_s": warm_up_s, "worst_ratio_to_goal": worst, "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
