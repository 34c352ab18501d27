"""Memory estimates against measured peaks: does the estimate that refuses runs bound what a forward takes?

For each preset, a fresh interpreter pins glibc's mmap threshold as a planned CPU run near the memory's limit does
(``videoattn_core.cost.memory.pin_allocator``; ``--allocator default`` leaves glibc alone and checks the loose estimate that
decides whether a run may keep it), builds the model (random weights) and its input, then runs two no-grad
forwards. The first (as a user's first run is) is measured by the growth of the peak resident memory over what the
process held before it: the kernel's high-water mark is reset first (``/proc/self/clear_refs`` ← 5, then
``VmHWM``), so that the transient peaks of building the model are not counted (``ru_maxrss`` where the reset is
not allowed); the growth is split into anonymous memory and file-backed pages (the code of the kernels the forward
pages in, from ``/proc/self/smaps_rollup``). It is compared with ``videoattn_core.cost.memory.memory_plan``'s total less the
weights (activations = live-tensor peak × allocator slack, plus the CPU runtime's start-up reserve, each the
allowance of that allocator). The second,
once the runtime runs, by the peak of its anonymous resident memory (sampled every 0.2 ms) over what it held
before, and compared with the activations alone. On CUDA both are ``max_memory_allocated`` over the bytes
allocated before.

Left to itself glibc raises its mmap threshold after the first large block is freed, and the first forward's
growth then depended on where its heap placed the tensors, which Python's per-process hash seed and address-space
randomisation change (swin_divided_st_t: 323–393 MiB over three seeds); pinned, freed tensors are unmapped and the
growth follows the live tensors (274.4–274.6 MiB). ``--repeats N`` measures each preset in N processes with
``PYTHONHASHSEED`` 1..N and reports the smallest and largest growth (the estimate must bound the largest and stay
within 1.5× of the smallest).

    .venv/bin/python bench/memory.py [--presets a,b] [--device cpu|cuda] [--threads N] [--repeats N] [--cold-only]
                                        [--allocator pinned|kept|default] [--dtype float32|bfloat16]

Writes ``bench/results/memory.json`` (``--out``) and prints estimate / measured per preset: the estimate must be
≥ 1, and the tight one (pinned allocator, CUDA) should be ≤ 1.5; the loose ones of ``--allocator kept`` and
``default`` need only bound the growth (with the heaps keeping freed memory it varies with the heap's history: use
``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, resource, sys, threading, time, torch
import videoattn_core as vac
preset, device, threads, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
dtype = getattr(torch, sys.argv[6])
torch.set_num_threads(threads)
if device == "cpu" and sys.argv[5] == "pinned":
    from videoattn_core.cost.memory import pin_allocator
    assert pin_allocator()  # as memory_plan does, before the model is built, for a run near the memory's limit
if device == "cpu" and sys.argv[5] == "kept":
    from videoattn_core.cost.memory import keep_allocator
    assert keep_allocator()  # as memory_plan does for a run far from the memory's limit
config = vac.get_config(preset)
model = vac.runtime.build_seeded(config, 0).to(device=device, dtype=dtype).eval()
x = torch.randn(config.input_shape(), device=device, dtype=dtype)

def anon():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

def statm_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

if device == "cuda":
    out = {}
    for name in ("cold", "warm") if warm else ("cold",):
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
        with torch.no_grad():
            model(x)
        torch.cuda.synchronize(); out[name] = torch.cuda.max_memory_allocated() - before
else:
    def rollup():
        with open("/proc/self/smaps_rollup") as f:
            fields = dict(line.split()[:2] for line in f if line.endswith("kB\n"))
        return {k.rstrip(":"): int(v) * 1024 for k, v in fields.items()}

    def hwm():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    first = rollup()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS to the current RSS: building the model's transients are not counted
        peak_rss = hwm
    except OSError:
        peak_rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = statm_rss()
    with torch.no_grad():
        model(x)  # the first forward: the runtime starts its thread pools and kernel caches
    cold = peak_rss() - before
    after = rollup()
    file_pages = (after["Rss"] - after["Anonymous"]) - (first["Rss"] - first["Anonymous"])
    out = {"cold": cold, "file_pages": file_pages}
if device != "cuda" and warm:
    peak, stop = [0], [False]
    def sample():
        while not stop[0]:
            peak[0] = max(peak[0], anon())
            time.sleep(0.0002)
    base = anon()
    sampler = threading.Thread(target=sample)
    sampler.start()
    with torch.no_grad():
        model(x)  # the second forward: what the tensors and the allocator take once the runtime runs
    stop[0] = True
    sampler.join()
    out["warm"] = peak[0] - base
print(json.dumps(out))
"""


def measure(preset: str, device: str, threads: int, hash_seed: int | None = None, warm: bool = True,
            allocator: str = "pinned", dtype: str = "float32") -> dict[str, int]:
    env = dict(os.environ, **({"PYTHONHASHSEED": str(hash_seed)} if hash_seed is not None else {}))
    done = subprocess.run([sys.executable, "-c", _CHILD, preset, device, str(threads), str(int(warm)), allocator, dtype],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{preset}: {done.stderr.strip().splitlines()[-1] if done.stderr else 'failed'}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    import torch

    import videoattn_core as vac
    from videoattn_core.cost import memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(n for n in vac.list_models() if vac.get_preset(n).config.has_head))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure each preset in this many processes (PYTHONHASHSEED 1..N); report the largest")
    parser.add_argument("--max-gmacs", type=float, default=2500,
                        help="skip presets whose forward costs more (a CPU forward of ViT-g at 64×384 takes hours)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    parser.add_argument("--allocator", default="pinned", choices=("pinned", "kept", "default"),
                        help="pinned: the tight estimate, with glibc's mmap threshold pinned as memory_plan does near "
                             "the memory's limit; kept: the loose estimate, with freed memory kept in the heaps as "
                             "memory_plan does far from it; default: the loose estimate, glibc left alone")
    parser.add_argument("--cold-only", action="store_true",
                        help="measure the first forward only (no warm forward): half the time for the estimate's check")
    args = parser.parse_args()
    rows = []
    for preset in args.presets.split(","):
        summary = vac.summarize(preset)
        if summary.macs > args.max_gmacs * 1e9:
            print(f"{preset:26s} skipped: {summary.macs / 1e9:.0f} GMACs > --max-gmacs {args.max_gmacs:g}")
            continue
        estimate = summary.memory_estimate(getattr(torch, args.dtype).itemsize, 1)
        slack, reserve = memory.ALLOWANCES[None if args.device != "cpu" else args.allocator]
        activations = int(estimate["activations"] * slack) + estimate["attention"]
        total = activations + reserve
        plan = {"live_tensor_peak_bytes": estimate["activations"]}
        try:
            runs = [measure(preset, args.device, args.threads, seed if args.repeats > 1 else None, not args.cold_only,
                            args.allocator, args.dtype)
                    for seed in range(1, args.repeats + 1)]
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{preset:26s} skipped: {exc}")
            continue
        cold = [r["cold"] for r in runs]
        grown = max(runs, key=lambda r: r["cold"])
        row = {"preset": preset, "estimate_bytes": total, "activations_estimate_bytes": activations,
               "live_tensor_peak_bytes": plan["live_tensor_peak_bytes"],
               "measured_first_forward_bytes": grown["cold"], "measured_first_forward_min_bytes": min(cold),
               "measured_first_forward_all_bytes": cold, "file_pages_bytes": grown.get("file_pages"),
               "measured_warm_forward_bytes": grown.get("warm"),
               "first_forward_ratio": total / max(grown["cold"], 1),
               "first_forward_ratio_to_min": total / max(min(cold), 1),
               "warm_ratio": activations / max(grown["warm"], 1) if "warm" in grown else None}
        rows.append(row)
        spread = f" (min {min(cold) / 2**20:6.1f} = {row['first_forward_ratio_to_min']:4.2f})" if len(runs) > 1 else ""
        code = f", code pages {grown['file_pages'] / 2**20:4.1f}" if grown.get("file_pages") is not None else ""
        warm = ""
        if "warm" in grown:  # with the heaps keeping freed memory, a warm forward reuses it and grows by nothing
            warm = (f"   warm: {activations / 2**20:8.1f} / {grown['warm'] / 2**20:8.1f} = {row['warm_ratio']:4.2f}"
                    if grown["warm"] >= 2**20 else "   warm: grew by less than 1 MiB")
        print(f"{preset:26s} first forward: estimate {total / 2**20:8.1f} MiB / measured {grown['cold'] / 2**20:8.1f} "
              f"= {row['first_forward_ratio']:4.2f}{spread}{code}{warm}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "dtype": args.dtype, "threads": args.threads,
                                    "repeats": args.repeats,
                                    "rows": rows}, indent=2))
    # the tight estimate (pinned allocator, CUDA) must bound the growth and stay within 1.5× of it; the loose ones
    # (the heaps keeping freed memory) need only bound it: they decide whether a run may keep its heaps
    tight = args.device != "cpu" or args.allocator == "pinned"
    for key, what in (("first_forward_ratio", "first forwards (estimate with the runtime reserve)"),
                      ("warm_ratio", "warm forwards (activations estimate)")):
        low = "first_forward_ratio_to_min" if key == "first_forward_ratio" else key
        if any(r[key] is None for r in rows):
            continue
        bad = [r["preset"] for r in rows if not (1.0 <= r[key] and (r[low] <= 1.5 or not tight))]
        print(f"{what}: {len(rows) - len(bad)} of {len(rows)} estimates are upper bounds"
              + (" within 1.5× of the measured growth" if tight else " of the measured growth")
              + (f"; not: {', '.join(bad)}" if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
