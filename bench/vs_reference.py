"""Our forward against the published implementations' own forward: same weights, same input, same process.

    /work/.venv-ref/bin/python bench/vs_reference.py [--presets mvit_v2_s,swin3d_t] [--threads 2] [--rounds 5]
    python3 bench/vs_reference.py --device cuda --dtype bfloat16   # on a GPU machine that has both libraries

The references are not dependencies of the product: this script runs in a separate environment that has
torchvision and transformers besides PyTorch (see the README's "Benchmarks"). Each ``bench/ref_*.py`` module
offers ``pairs()``: preset name → a builder of ``(ours, reference, x)``, where ``ours`` holds the reference's
weights (loaded through ``vac.load_checkpoint``) so both compute the same logits; the script checks that they do
before timing. Both are built on the CPU in float32, then moved to ``--device`` in ``--dtype``. Ours and the
reference then run alternately, ``--rounds`` times each after one warm-up, and the best wall time and the best
CPU time (all threads) of each are kept. ``--allocator`` (``kept`` by default, as the app and the command line
run ours) applies to both models: the reference takes the same heaps. Printed, and written to
``bench/results/vs_reference.json``: ours / reference (≤ 0.85 is the goal), and the fraction of the matmul peak
(measured in the same run) that each reaches.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import videoattn_core as vac  # noqa: E402
from run import DTYPES, add_allocator_argument, matmul_throughput, synchronize, use_allocator  # noqa: E402


def reference_pairs() -> dict:
    """Every ``pairs()`` of the ``bench/ref_*.py`` modules whose reference library is installed."""
    pairs = {}
    for path in sorted((ROOT / "bench").glob("ref_*.py")):
        try:
            module = importlib.import_module(path.stem)
        except ImportError as exc:
            print(f"# {path.name}: skipped ({exc})")
            continue
        pairs.update(module.pairs())
    return pairs


def best_times(fn, rounds: int, device: torch.device) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(rounds):
        synchronize(device)
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def compare(preset: str, build, rounds: int, peak: float, device: torch.device, dtype: torch.dtype) -> dict:
    torch.manual_seed(0)
    ours, reference, x = build()
    ours, reference, x = (t.to(device=device, dtype=dtype) for t in (ours, reference, x))
    with torch.no_grad():
        a, b = ours(x), reference(x)  # the warm-up of both, and the proof that they compute the same network
        difference = (a - b).abs().max().item()
        scale = b.abs().max().item()
        runs = {"ours": ([], []), "reference": ([], [])}
        for _ in range(rounds):  # alternate, so that both see the same machine load
            for name, model in (("ours", ours), ("reference", reference)):
                wall, cpu = best_times(lambda: model(x), 1, device)
                runs[name][0].extend(wall)
                runs[name][1].extend(cpu)
    macs = vac.summarize(preset).macs
    ours_s, ref_s = min(runs["ours"][0]), min(runs["reference"][0])
    return {
        "preset": preset, "gmacs": macs / 1e9, "max_abs_difference": difference, "reference_scale": scale,
        "ours_s": ours_s, "reference_s": ref_s, "ours_over_reference": ours_s / ref_s,
        "ours_over_reference_cpu": min(runs["ours"][1]) / min(runs["reference"][1]),
        "ours_fraction_of_peak": 2 * macs / ours_s / peak, "reference_fraction_of_peak": 2 * macs / ref_s / peak,
        "ours_runs_s": runs["ours"][0], "reference_runs_s": runs["reference"][0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", help="comma-separated presets (default: every one with a reference)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    parser.add_argument("--rounds", type=int, default=5, help="timed forwards of each, alternating")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "vs_reference.json")
    add_allocator_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_allocator(args.allocator, args.device)  # for both models; with denormals flushed, as the app runs
    pairs = reference_pairs()
    presets = [p.strip() for p in args.presets.split(",")] if args.presets else list(pairs)
    missing = [p for p in presets if p not in pairs]
    if missing:
        print(f"error: no reference for {', '.join(missing)}; references: {', '.join(pairs) or 'none installed'}",
              file=sys.stderr)
        return 2
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    peak = matmul_throughput(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# {name} ({args.device}, {args.dtype}), torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, allocator {args.allocator} (both); matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{'preset':22s} {'ours':>8s} {'reference':>9s} {'ratio':>6s} {'cpu ratio':>9s} {'ours/peak':>9s} "
          f"{'ref/peak':>8s} {'max |diff|':>10s}")
    rows = []
    for preset in presets:
        peak = max(peak, matmul_throughput(device, dtype, seconds=0.5))
        row = compare(preset, pairs[preset], args.rounds, peak, device, dtype)
        rows.append(row)
        print(f"{preset:22s} {row['ours_s']:7.3f}s {row['reference_s']:8.3f}s {row['ours_over_reference']:6.3f} "
              f"{row['ours_over_reference_cpu']:9.3f} {row['ours_fraction_of_peak']:9.1%} "
              f"{row['reference_fraction_of_peak']:8.1%} {row['max_abs_difference']:10.2e}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": name, "dtype": args.dtype, "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "allocator": args.allocator,
                                    "matmul_peak_gflops": peak / 1e9, "rows": rows}, indent=1))
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
