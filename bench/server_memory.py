"""How much memory the app's server holds through a walk of its heaviest pages, measured from outside.

    .venv/bin/python bench/server_memory.py [--walk full | short] [--interval 0.05] [--out FILE]

Serves the app with ``streamlit run`` on 127.0.0.1 (its background warm-up of summaries off, a fresh disk cache of
summaries) and walks it in headless Chromium (Playwright), as one visitor, through the walk of issue 27:

- three Side-by-side runs of three full-size models each on the default clip (:data:`SIDE_RUNS`: the default trio
  and another with relevance maps, a third set with Grad-CAM), the Run button pressed where the page asks for it;
- four explanations on the Attention page, each on another model (:data:`EXPLANATIONS`: relevance, Grad-CAM,
  rollout, relevance).

The peak is set by the heaviest single map, which no cache budget lowers: a relevance map of Swin3D-T (in the
default trio) takes a bare process to 3.4 GB by itself (measured here, one process, random weights), and those of
Swin3D-S/B and VideoMAE-B further (4.5–6.4 GB before the leaner relevance of this branch). The cache decides what
stays between maps: the final figure, and the RSS at the end of each step.

All the while a thread samples the resident set (``/proc/PID/statm``) of the server and of every process below it
every ``--interval`` seconds. Printed and written to ``bench/results/server_memory.json``: the peak and final RSS of
the server process and of its process tree, the RSS at the end of every step, and the cache budget in force
(``VIDEOATTN_CACHE_MB`` as the server saw it, if set). The final figure is taken after the walk, once the server has
been idle for ``--settle`` seconds. Exits with status 1 when the tree's peak reaches :data:`GOAL_BYTES` (issue 27,
item 6: the peak under 3 GB = 3·10⁹ bytes).

``--walk short`` runs a smaller walk (two side-by-side runs, two explanations) for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from served_app import serve  # bench/, the script's folder

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VIDEOATTN_CHROMIUM", "/usr/bin/chromium")
GOAL_BYTES = 3 * 10**9
PAGE_BYTES = resource.getpagesize()
TIMEOUT_MS = 900_000

#: three side-by-side runs of full-size models: the page's default trio, another trio, and a third with Grad-CAM
SIDE_RUNS = [
    "n=3",
    "n=3&m1=mvit_v1_b&m2=videomae_s&m3=swin_divided_st_t",
    "n=3&m1=swin3d_t&m2=videomae_s&m3=mvit_v1_b&method=gradcam",
]
#: four explanations on the Attention page, each on another model
EXPLANATIONS = [
    ("timesformer_base", "relevance"),
    ("mvit_v2_s", "gradcam"),
    ("videomae_s", "rollout"),  # rollout needs the same tokens in every layer (not MViT's or Swin's)
    ("mvit_v1_b", "relevance"),
]


# ------------------------------------------------------------------------------------------------ sampling

def tree_of(root: int) -> list[int]:
    """``root`` and every process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


class Sampler(threading.Thread):
    """The RSS of the server and of its process tree every ``interval`` seconds (the tree re-read every second)."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, server RSS, tree RSS)
        self.start_time = time.monotonic()
        self.lock = threading.Lock()

    def run(self) -> None:
        tree, tree_at = [self.pid], 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now - tree_at > 1.0:
                tree, tree_at = tree_of(self.pid), now
            server = rss_of(self.pid)
            total = server + sum(rss_of(p) for p in tree if p != self.pid)
            with self.lock:
                self.samples.append((now - self.start_time, server, total))
            self.stop_event.wait(self.interval)

    def last(self) -> tuple[float, int, int]:
        with self.lock:
            return self.samples[-1] if self.samples else (0.0, 0, 0)

    def peak(self, since: float = 0.0) -> tuple[int, int]:
        with self.lock:
            rows = [s for s in self.samples if s[0] >= since]
        return max((s[1] for s in rows), default=0), max((s[2] for s in rows), default=0)


# ------------------------------------------------------------------------------------------------ server, walk


def script_idle(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state') "
        "=== 'notRunning'", polling=100, timeout=TIMEOUT_MS)


def press_run_if_asked(page) -> bool:
    """Click the page's Run button when the page waits for it (heavy forwards on the CPU); True when clicked."""
    page.wait_for_timeout(300)
    script_idle(page)
    button = page.get_by_role("button", name="Run", exact=True)
    if button.count():
        button.click()
        page.wait_for_timeout(300)
        return True
    return False


def fail_if_error(page, what: str) -> None:
    if page.locator('[data-testid="stException"]').count():
        raise SystemExit(f"{what}: the page raised: {page.locator('[data-testid=stException]').first.inner_text()}")
    errors = page.locator('[data-testid="stAlertContentError"]')
    if errors.count():
        raise SystemExit(f"{what}: the page shows an error: {errors.first.inner_text()}")


def side_by_side(page, base: str, link: str) -> None:
    page.goto(f"{base}/side-by-side?{link}")
    press_run_if_asked(page)
    page.wait_for_function(
        "() => /done: \\d models|failed while/.test(document.body.innerText)", polling=200, timeout=TIMEOUT_MS)
    script_idle(page)
    fail_if_error(page, f"side by side {link}")


def explanation(page, base: str, model: str, method: str) -> None:
    page.goto(f"{base}/attention?model={model}&explain={method}")
    press_run_if_asked(page)
    page.wait_for_function(
        "(method) => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
        ".some(e => e.textContent.startsWith(method + ' for')) || "
        "document.body.innerText.includes(method + ' is not available for this model') || "
        "document.body.innerText.includes('Traceback')", arg=method, polling=200, timeout=TIMEOUT_MS)
    script_idle(page)
    fail_if_error(page, f"{method} on {model}")
    if f"{method} is not available for this model" in page.inner_text("body"):
        raise SystemExit(f"{method} on {model}: the page says it is not available")


def gb(n: int) -> float:
    return round(n / 1e9, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walk", choices=("full", "short"), default="full")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between RSS samples")
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before the final RSS")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "server_memory.json")
    args = parser.parse_args()
    import playwright.sync_api as playwright_api

    side_runs, explanations = (SIDE_RUNS, EXPLANATIONS) if args.walk == "full" else (SIDE_RUNS[:2], EXPLANATIONS[:2])
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = serve(str(Path(tmp) / "cache"), Path(tmp) / "streamlit.log")
        sampler = Sampler(proc.pid, args.interval)
        sampler.start()
        steps = []

        def step(what: str, action) -> None:
            started = sampler.last()[0]
            clock = time.perf_counter()
            action()
            _, server, tree = sampler.last()
            peak_server, peak_tree = sampler.peak(since=started)
            steps.append({"step": what, "seconds": round(time.perf_counter() - clock, 1),
                          "peak_server_gb": gb(peak_server), "peak_tree_gb": gb(peak_tree),
                          "end_server_gb": gb(server), "end_tree_gb": gb(tree)})
            print(f"{what:60s} {steps[-1]['seconds']:7.1f} s   peak {gb(peak_tree):6.3f} GB   "
                  f"end {gb(tree):6.3f} GB", flush=True)

        try:
            with playwright_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                step("start: Model page", lambda: (page.goto(f"{base}/"), script_idle(page)))
                for link in side_runs:
                    step(f"side by side {link}", lambda link=link: side_by_side(page, base, link))
                for model, method in explanations:
                    step(f"attention {model} {method}", lambda m=model, k=method: explanation(page, base, m, k))
                page.goto(f"{base}/")
                script_idle(page)
                browser.close()
            time.sleep(args.settle)
        except BaseException:
            print((Path(tmp) / "streamlit.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            sampler.stop_event.set()
            sampler.join()
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    peak_server, peak_tree = sampler.peak()
    _, final_server, final_tree = sampler.samples[-1]
    budget = os.environ.get("VIDEOATTN_CACHE_MB")
    result = {"walk": args.walk, "side_by_side": side_runs, "explanations": explanations,
              "cache_mb_env": budget, "goal_gb": gb(GOAL_BYTES), "samples": len(sampler.samples),
              "interval_s": args.interval, "peak_server_gb": gb(peak_server), "peak_tree_gb": gb(peak_tree),
              "final_server_gb": gb(final_server), "final_tree_gb": gb(final_tree), "steps": steps,
              "rss_every_second_gb": [gb(s[2]) for s in sampler.samples[::max(1, round(1 / args.interval))]]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"peak RSS: server {gb(peak_server)} GB, process tree {gb(peak_tree)} GB (goal < {gb(GOAL_BYTES)} GB); "
          f"after the walk: {gb(final_tree)} GB; {len(sampler.samples)} samples; written to {args.out}")
    return 0 if peak_tree < GOAL_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
