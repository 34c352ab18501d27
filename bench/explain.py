"""Benchmark of explanations: relevance on a preset (default timesformer_base, 8×224) against one plain forward.

    python bench/explain.py                                    # timesformer_base, CPU float32
    python bench/explain.py --preset mvit_v2_s --method gradcam --threads 1
    python bench/explain.py --preset swin3d_t --recompute

``--allocator kept`` (the default) holds freed memory in glibc's heaps as the app and the command line do far from the
memory's limit; an explanation leaves what it frees there too, for the next one (a second map faults in almost no
new pages).
``--recompute``: relevance recomputing the attention blocks in its backward pass (less memory, one more forward).

The plain forward (no gradient, fused attention) is timed ``--repeats`` times (3) after one warm-up forward, the
best is the figure; the explanation runs once (the process's first, which also sets up kernels for the backward's
shapes, printed too), then ``--repeats`` − 1 times more, the best of those is the figure compared.
Memory is the process's peak resident set (``ru_maxrss``) after the forward and after the first explanation, minus
the resident set before either (model weights and input included in that baseline); the explanation runs second,
so its figure is the larger of the two peaks. Prints one line and writes ``bench/results/explain-<time>.json``
(git-ignored). Targets (issues 12 and 27): ≤ 3× the forward, ≤ 4 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import videoattn_core as vac  # noqa: E402
from videoattn_core.attention.explanations import METHODS, explain  # noqa: E402
from run import add_allocator_argument, use_allocator  # noqa: E402  (bench/, the script's folder)


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="timesformer_base")
    parser.add_argument("--method", default="relevance", choices=METHODS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--recompute", action="store_true",
                        help="relevance runs each attention block again in its backward pass (explain(recompute=True))")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed forwards (the best is the figure) and explanations after the first (repeats − 1, "
                             "at least 1; the best is the figure)")
    add_allocator_argument(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_allocator(args.allocator)
    torch.manual_seed(0)
    model = vac.build_model(args.preset).eval()
    x = torch.randn(model.config.input_shape(), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x)  # warm-up
    base = current_rss_bytes()

    forwards = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        forwards.append(time.perf_counter() - start)
    forward_s = min(forwards)
    forward_peak = rss_bytes() - base

    start = time.perf_counter()
    result = explain(model, x, method=args.method, recompute=args.recompute)
    first_s = time.perf_counter() - start
    explain_peak = rss_bytes() - base
    explains = []
    for _ in range(max(1, args.repeats - 1)):
        start = time.perf_counter()
        explain(model, x, method=args.method, recompute=args.recompute)
        explains.append(time.perf_counter() - start)
    explain_s = min(explains)

    shape = "×".join(map(str, x.shape[2:]))
    row = {"preset": args.preset, "method": args.method, "input": shape, "threads": torch.get_num_threads(),
           "recompute": args.recompute, "allocator": args.allocator, "forward_s": forward_s, "first_explain_s": first_s,
           "explain_s": explain_s, "ratio": explain_s / forward_s, "forward_runs_s": forwards,
           "explain_runs_s": explains,
           "forward_peak_bytes": forward_peak, "explain_peak_bytes": explain_peak, "baseline_rss_bytes": base,
           "token_grid": list(result.tokens.shape), "torch": torch.__version__,
           "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    print(f"{args.method} on {args.preset} {shape}, CPU ({row['threads']} threads, allocator {args.allocator}"
          f"{', recompute' if args.recompute else ''}): forward {forward_s:.2f} s, "
          f"{args.method} {explain_s:.2f} s = {row['ratio']:.2f}× the forward (the process's first: {first_s:.2f} s);"
          f" peak memory above the "
          f"{base / 2**30:.2f} GiB baseline: forward {forward_peak / 2**30:.2f} GiB, {args.method} "
          f"{explain_peak / 2**30:.2f} GiB")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"explain-{datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
