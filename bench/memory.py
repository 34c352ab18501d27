"""Memory estimates against measured peaks: does the estimate that refuses runs bound what a forward takes?

For each preset, a fresh interpreter builds the model (random weights) and its input, then runs one no-grad forward
(the first one, as a user's first run is) and reports the growth of its peak resident memory over what it held
before the forward (CPU: ``ru_maxrss``), or CUDA's ``max_memory_allocated`` over the allocated bytes before it.
The estimate is ``vac.analysis.memory_plan``'s total less the weights (they are there before the forward in both):
activations (live-tensor peak × allocator slack) and, on the CPU, the runtime's start-up reserve.

    .venv/bin/python bench/memory.py [--presets a,b] [--device cpu|cuda] [--threads N]

Writes ``bench/results/memory.json`` and prints estimate / measured per preset (the estimate must be ≥ 1 and
should be ≤ 1.5).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, resource, sys, torch
import videoattn_core as vac
preset, device, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
config = vac.get_config(preset)
model = vac.runtime.build_seeded(config, 0).to(device).eval()
x = torch.randn(config.input_shape(), device=device)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
    with torch.no_grad():
        model(x)
    torch.cuda.synchronize(); grown = torch.cuda.max_memory_allocated() - before
else:
    before = rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.no_grad():
        model(x)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max(before, 0)
print(json.dumps({"grown_bytes": grown}))
"""


def measure(preset: str, device: str, threads: int) -> int:
    done = subprocess.run([sys.executable, "-c", _CHILD, preset, device, str(threads)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{preset}: {done.stderr.strip().splitlines()[-1] if done.stderr else 'failed'}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["grown_bytes"])


def main() -> int:
    import torch

    import videoattn_core as vac
    from videoattn_core.analysis import memory_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(n for n in vac.list_models() if vac.get_preset(n).config.has_head))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--max-gmacs", type=float, default=2500,
                        help="skip presets whose forward costs more (a CPU forward of ViT-g at 64×384 takes hours)")
    args = parser.parse_args()
    rows = []
    for preset in args.presets.split(","):
        summary = vac.summarize(preset)
        if summary.macs > args.max_gmacs * 1e9:
            print(f"{preset:26s} skipped: {summary.macs / 1e9:.0f} GMACs > --max-gmacs {args.max_gmacs:g}")
            continue
        plan = memory_plan(summary, args.device)
        estimate = plan["activations_bytes"] + plan["runtime_reserve_bytes"] + plan["attention_bytes"]
        try:
            grown = measure(preset, args.device, args.threads)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{preset:26s} skipped: {exc}")
            continue
        ratio = estimate / grown if grown > 0 else float("inf")
        rows.append({"preset": preset, "estimate_bytes": estimate, "measured_bytes": grown, "ratio": ratio})
        print(f"{preset:26s} estimate {estimate / 2**20:9.1f} MiB  measured {grown / 2**20:9.1f} MiB  "
              f"estimate/measured {ratio:5.2f}", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps({"device": args.device, "threads": args.threads, "rows": rows},
                                                indent=2))
    bad = [r["preset"] for r in rows if not 1.0 <= r["ratio"] <= 1.5]
    print(f"{len(rows) - len(bad)} of {len(rows)} estimates are upper bounds within 1.5× of the measured peak"
          + (f"; not: {', '.join(bad)}" if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
