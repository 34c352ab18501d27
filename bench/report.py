"""Every performance goal in one run: measured figures, their ratio to the goal, met or not, to one JSON file.

    .venv/bin/python bench/report.py                 # CPU: forwards, inspection, references, the app
    .venv/bin/python bench/report.py --quick         # one small preset per family, fewer rounds
    .venv/bin/python bench/report.py --device cuda   # on a GPU machine: fp32 and bf16, eager and compiled
    bash bench/gpu_check.sh OUT                      # on a lent GPU machine: the GPU tests, this and bench/memory.py
    .venv/bin/python bench/report.py --skip app,reference
    .venv/bin/python bench/report.py --skip forward,reference --app-presets all   # the app goals for every preset

It runs the other benchmarks, each in its own process, and reads what they write:

- ``bench/run.py`` — per preset, the fraction of the matmul peak (measured in the same run) that a forward
  reaches, and an inspection with one captured layer over a plain forward;
- ``bench/vs_reference.py`` in ``.venv-ref`` (``make bench-ref`` creates it; ``--reference-python`` names another
  interpreter that has torchvision and transformers) — our forward over the published implementation's, same
  weights, alternating; on CUDA in float32 and bfloat16;
- ``bench/app_response.py`` — the Model page in a real browser: first render of ``/?model=PRESET``, then the
  numbers and the whole page after a hyperparameter change.

Goals (issue 13): forward ≤ 0.85× the reference; ≥ 60% of the matmul peak for MViT and Video Swin, ≥ 92% for
TimeSformer; inspection ≤ 1.1× a forward; first render ≤ 3 s, numbers ≤ 0.5 s, whole page ≤ 1.5 s after a change.
Each row says ``measured / goal`` as a ratio (≤ 1 met for "at most" goals, ≥ 1 for "at least" ones). Written to
``bench/results/report.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
REFERENCE_PYTHON = ROOT / ".venv-ref" / "bin" / "python"

#: one preset per family (the first of each is the --quick set)
FAMILY_PRESETS = {
    "timesformer": ("timesformer_base",), "mvit": ("mvit_v2_s", "mvit_v1_b"), "swin3d": ("swin3d_t",),
    "swin_divided": ("swin_divided_st_t",), "fiery": ("fiery_temporal",), "videomae": ("videomae_s", "videomae_base"),
    "vivit": ("vivit_b_fe", "vivit_b"), "vjepa2": ("vjepa2_vitl",),
}
PEAK_GOALS = {"timesformer": 0.92, "mvit": 0.60, "swin3d": 0.60, "swin_divided": 0.60}
REFERENCE_GOAL, INSPECT_GOAL = 0.85, 1.10
APP_GOALS = {"first_page_s": 3.0, "numbers_median_s": 0.5, "page_median_s": 1.5}  # bench/app_response.py's keys
APP_NAMES = {"first_page_s": "first render of /?model=", "numbers_median_s": "numbers after a change",
             "page_median_s": "whole page after a change"}
APP_PRESETS = ("timesformer_base", "mvit_v2_s", "swin3d_t", "timesformer_hr", "mvit_v2_b", "swin3d_l", "vjepa2_vitl")
#: the compiled forwards on a GPU: each compilation takes about a minute, so a global- and a window-attention model
COMPILE_PRESETS = ("timesformer_base", "swin3d_t")


def family_of(preset: str) -> str:
    return next(f for f, presets in FAMILY_PRESETS.items() if preset in presets)


def goal_row(what: str, preset: str, measured: float, goal: float, at_most: bool) -> dict:
    ratio = measured / goal
    return {"goal": what, "preset": preset, "measured": measured, "target": goal,
            "kind": "at most" if at_most else "at least", "measured_over_target": ratio,
            "met": ratio <= 1 if at_most else ratio >= 1}


def run(command: list, what: str) -> bool:
    print(f"# {what}: {' '.join(map(str, command))}", flush=True)
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode != 0:
        print(f"# {what} failed (exit {done.returncode})", flush=True)
    return done.returncode == 0


def forwards(presets: list[str], device: str, threads: int | None, repeat: int, extra: list[str],
             tmp: Path) -> list[dict]:
    out = tmp / f"run-{len(list(tmp.iterdir()))}.json"
    command = [PYTHON, "bench/run.py", "--presets", ",".join(presets), "--device", device, "--repeat", str(repeat),
               "--out", out, *extra] + (["--threads", str(threads)] if threads else [])
    if not run(command, "forwards and inspection"):
        return []
    return json.loads(out.read_text())["results"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small preset per family, fewer rounds")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: forward, reference, app")
    parser.add_argument("--app-presets", default=",".join(APP_PRESETS),
                        help="presets the app part opens and changes, comma-separated, or all (default: %(default)s)")
    parser.add_argument("--compile-presets", default=",".join(COMPILE_PRESETS),
                        help="presets whose compiled forwards are timed on CUDA, comma-separated (default: %(default)s)")
    parser.add_argument("--reference-python", type=Path, default=REFERENCE_PYTHON,
                        help="interpreter with torchvision and transformers for the references (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "report.json")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    presets = [ps[0] for ps in FAMILY_PRESETS.values()] if args.quick else \
        [p for ps in FAMILY_PRESETS.values() for p in ps]
    repeat = 2 if args.quick else 3
    report: dict = {"device": args.device, "threads": args.threads, "goals": [], "parts": {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part: a run stopped by a time limit keeps what it measured
        args.out.write_text(json.dumps(report, indent=1, default=str))

    eager = [("float32", [])] + ([("bfloat16", ["--dtype", "bfloat16"])] if args.device == "cuda" else [])
    compiled = [p.strip() for p in args.compile_presets.split(",") if p.strip()] if args.device == "cuda" else []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, extra in eager if "forward" not in skip else ():
            rows = forwards(presets, args.device, args.threads, repeat, extra, tmp)
            report["parts"][f"forward {name}"] = rows
            for row in rows if name == "float32" else ():
                family = family_of(row["preset"])
                if family in PEAK_GOALS:
                    report["goals"].append(goal_row("fraction of the matmul peak", row["preset"],
                                                    row["fraction_of_matmul_peak"], PEAK_GOALS[family], False))
                report["goals"].append(goal_row("inspection (1 captured layer) / forward", row["preset"],
                                                row["inspect_over_forward"], INSPECT_GOAL, True))
            save()
        for name, extra in eager if "forward" not in skip and compiled else ():
            report["parts"][f"forward {name} compiled"] = forwards(compiled, args.device, args.threads, repeat,
                                                                   [*extra, "--compile"], tmp)
            save()
        if "reference" not in skip and not shutil.which(str(args.reference_python)):
            print(f"# against the published implementations: skipped, {args.reference_python} is missing "
                  "(make bench-ref)")
        elif "reference" not in skip:
            for name, extra in eager:
                out = tmp / f"vs_reference-{name}.json"
                command = [args.reference_python, "bench/vs_reference.py", "--out", out, "--device", args.device,
                           "--rounds", "3" if args.quick else "5", *extra] + \
                    (["--threads", str(args.threads)] if args.threads else [])
                if run(command, f"against the published implementations ({name})"):
                    rows = json.loads(out.read_text())["rows"]
                    report["parts"]["reference" if name == "float32" else f"reference {name}"] = rows
                    for row in rows if name == "float32" else ():
                        report["goals"].append(goal_row("forward / reference's forward", row["preset"],
                                                        row["ours_over_reference"], REFERENCE_GOAL, True))
                save()
        if "app" not in skip:
            out = ROOT / "bench" / "results" / "app_response.json"  # where app_response.py writes
            app_presets = APP_PRESETS[:3] if args.quick else args.app_presets.split(",")
            command = [PYTHON, "bench/app_response.py", "--warmed", "--presets", *app_presets,
                       "--changes-for", *app_presets]  # "all" passes through: every preset, each changed
            if run(command, "the app in a browser"):
                rows = json.loads(out.read_text())["results"]
                report["parts"]["app"] = rows
                for row in rows:
                    for key, goal in APP_GOALS.items():
                        if row.get(key) is not None:
                            report["goals"].append(goal_row(f"app: {APP_NAMES[key]}",
                                                            row["preset"], row[key], goal, True))
    save()
    print(f"\n{'goal':42s} {'preset':20s} {'measured':>9s} {'target':>9s} {'ratio':>6s}  met")
    for g in report["goals"]:
        print(f"{g['goal']:42s} {g['preset']:20s} {g['measured']:9.3f} {'≤' if g['kind'] == 'at most' else '≥':>4s} {g['target']:4.2f} "
              f"{g['measured_over_target']:6.2f}  {'yes' if g['met'] else 'NO'}")
    met = sum(g["met"] for g in report["goals"])
    print(f"# {met} of {len(report['goals'])} goals met; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
