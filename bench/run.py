"""Benchmark of the inspection engine: per preset, MACs, the static summary's time, a plain forward, an inspection
with one captured attention layer, and how much of the machine's matmul throughput each forward reaches.

    python bench/run.py                                  # every preset, CPU float32 (slow on a small machine)
    python bench/run.py --quick                          # a few small presets
    python bench/run.py --presets timesformer_base,swin3d_t --repeat 3
    python bench/run.py --quick --threads 1              # steadier ratios on a CPU other processes share
    python bench/run.py --device cuda --dtype bfloat16   # on a GPU machine

One run per measurement (after one warm-up forward), the best of ``--repeat`` runs when asked for more; plain and
inspected forwards alternate so that both see the same machine load. The results, with the machine's
description, go to ``bench/results/bench-<time>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import videoattn_core as vac  # noqa: E402

QUICK_PRESETS = ("timesformer_base", "mvit_v2_s", "swin3d_t", "fiery_temporal")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_throughput(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matmuls (2·n³ FLOPs each) over about ``seconds``: the machine's practical peak. On the
    CPU, the faster of PyTorch's ``matmul`` and oneDNN's linear (which the models' linear layers take where it is
    the faster: ``layers.onednn_float32_faster``; on AMD CPUs the BLAS's float32 path reaches about half of it)."""
    n = 4096 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    products = [lambda: torch.matmul(a, b)]
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    best = 0.0
    for product in products:
        try:
            product()
        except RuntimeError:  # oneDNN without this dtype here (bfloat16 on a CPU that lacks it, for instance)
            continue
        synchronize(device)
        spent = 0.0
        while spent < seconds / len(products):
            start = time.perf_counter()
            product()
            synchronize(device)
            elapsed = time.perf_counter() - start
            spent += elapsed
            best = max(best, 2 * n ** 3 / elapsed)
    return best


def timed(fn, device: torch.device) -> tuple[float, object]:
    t, _, out = timed_cpu(fn, device)
    return t, out


def timed_cpu(fn, device: torch.device) -> tuple[float, float, object]:
    """Wall time and this process's CPU time (all threads) of ``fn()``. On a shared CPU machine the CPU time
    is the steadier measure of work: other processes stretch the wall time, not the work."""
    synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu, out


COLD_SNIPPET = """
import json, time
start = time.perf_counter()
import videoattn_core as vac
imported = time.perf_counter()
vac.summarize({name!r})
first = time.perf_counter()
vac.summarize({name!r})
print(json.dumps({{"import_s": imported - start, "first_summary_s": first - imported,
                  "second_summary_s": time.perf_counter() - first}}))
"""


def cold_summary(name: str) -> dict:
    """Summary times in a fresh process: the first meta forward of a process also imports torch internals
    (``torch._dynamo``, behind PyTorch's Python meta kernels), which later summaries do not pay again."""
    done = subprocess.run([sys.executable, "-c", COLD_SNIPPET.format(name=name)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout)


def warm_up_inspection(device: torch.device, dtype: torch.dtype) -> None:
    """The first inspection of a process imports FlopCounterMode's machinery: pay that once, on a tiny model."""
    name = vac.list_models()[0]
    config = vac.get_config(name)
    tiny = {k: v for k, v in (("depth", 1), ("embed_dim", 32), ("num_heads", 2), ("img_size", 32),
                              ("num_frames", 2)) if hasattr(config, k)}
    try:
        model = vac.build_model(name, device=device, dtype=dtype, **tiny)
    except vac.ConfigError:
        model = vac.build_model(name, device=device, dtype=dtype)
    x = torch.randn(model.config.input_shape(), device=device, dtype=dtype)
    vac.inspect(model, x, vac.attention_layers(model)[:1])


def bench_preset(name: str, device: torch.device, dtype: torch.dtype, repeat: int, warmup: bool,
                 peak: float, compile: bool = False) -> dict:
    summary_cold, summary = timed(lambda: vac.summarize(name), torch.device("cpu"))
    summary_warm, _ = timed(lambda: vac.summarize(name), torch.device("cpu"))
    config = summary.config
    torch.manual_seed(0)
    model = vac.build_model(name, device=device, dtype=dtype, compile=compile)
    x = torch.randn(config.input_shape(), device=device, dtype=dtype)
    layers = vac.attention_layers(model)
    captured = [layers[len(layers) // 2]] if layers else []

    def plain():
        with torch.no_grad():
            return model(x)

    def inspected():
        return vac.inspect(model, x, captured)

    def eager():  # a compiled model's own eager module, timed beside it
        with torch.no_grad():
            return model._orig_mod(x)

    compiled = {}
    if compile:  # the first forward compiles: its time is what a user waits once per input shape
        compiled["compile_s"], _ = timed(plain, device)
    elif warmup:
        plain()
    plain_times, inspect_times, plain_cpu, inspect_cpu, eager_times, result = [], [], [], [], [], None
    for _ in range(repeat):
        t, c, _ = timed_cpu(plain, device)
        plain_times.append(t)
        plain_cpu.append(c)
        t, c, result = timed_cpu(inspected, device)
        inspect_times.append(t)
        inspect_cpu.append(c)
        if compile:
            eager_times.append(timed(eager, device)[0])
    plain_s, inspect_s = min(plain_times), min(inspect_times)
    if compile:
        compiled.update(eager_forward_s=min(eager_times), compiled_over_eager=plain_s / min(eager_times),
                        compile_fallback=model.fallback_reason)
    achieved = 2 * summary.macs / plain_s
    return {**compiled,
        "preset": name, "input_shape": list(summary.input_shape), "params": summary.params,
        "macs": summary.macs, "gmacs": summary.macs / 1e9, "measured_gmacs": (result.measured_macs or 0) / 1e9,
        "summary_s_first": summary_cold, "summary_s": summary_warm,
        "forward_s": plain_s, "inspect_s": inspect_s, "inspect_over_forward": inspect_s / plain_s,
        "forward_cpu_s": min(plain_cpu), "inspect_cpu_s": min(inspect_cpu),
        "inspect_over_forward_cpu": min(inspect_cpu) / min(plain_cpu),
        "captured_layer": captured[0] if captured else None,
        "captured_bytes": sum(c.probs.numel() * c.probs.element_size()
                              for cs in result.attention_calls.values() for c in cs),
        "achieved_tflops": achieved / 1e12, "fraction_of_matmul_peak": achieved / peak,
        "forward_runs_s": plain_times, "inspect_runs_s": inspect_times,
    }



def add_allocator_argument(parser: argparse.ArgumentParser) -> None:
    """``--allocator kept | default`` (the benchmarks that run forwards share it)."""
    parser.add_argument("--allocator", default="kept", choices=("kept", "default"),
                        help="CPU: kept, freed memory kept in glibc's heaps, as the app and the command line run "
                             "forwards far from the memory's limit (videoattn_core.cost.memory.keep_allocator); "
                             "default: glibc left alone")


def use_allocator(allocator: str, device: str = "cpu") -> None:
    """Put ``--allocator`` in force for this process, with denormals flushed to zero as the app and the command line
    run (``videoattn_core.run.devices.flush_denormals``; before the first parallel operation)."""
    from videoattn_core.run.devices import flush_denormals

    flush_denormals()
    if allocator == "kept" and device == "cpu":
        from videoattn_core.cost.memory import keep_allocator

        keep_allocator()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", help="comma-separated preset names (default: all, or the quick set)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_PRESETS)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per measurement, the best is kept (default 1; 3 with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for PyTorch (default: its own choice); 1 gives steadier ratios on a "
                             "machine other processes share, where a descheduled OpenMP thread stalls the rest")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the warm-up forward")
    parser.add_argument("--compile", action="store_true",
                        help="forwards through torch.compile (the warm-up forward compiles; inspections run eager)")
    add_allocator_argument(parser)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/bench-<time>.json)")
    args = parser.parse_args(argv)
    use_allocator(args.allocator, args.device)

    available = vac.list_models()
    if args.presets:
        presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    elif args.quick:
        presets = [p for p in QUICK_PRESETS if p in available]
    else:
        presets = available
    unknown = [p for p in presets if p not in available]
    if unknown:
        print(f"error: unknown preset {unknown[0]!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2

    # the matmul peak is measured before every preset and at the end, and the best is kept: on a shared machine
    # a single measurement may catch a busy moment
    cold = cold_summary(presets[0])
    print(f"# summary of {presets[0]} in a fresh process: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float)
                                                                      else f"{k} {v}" for k, v in cold.items()))
    peak = matmul_throughput(device, dtype)
    if args.warmup:
        warm_up_inspection(device, dtype)
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or
        platform.machine(), "dtype": args.dtype, "compile": args.compile, "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "matmul_peak_tflops": peak / 1e12,
        "allocator": args.allocator if device.type == "cpu" else None,
    }
    print(f"# {machine['device']} ({args.device}, {args.dtype}), torch {torch.__version__}, "
          f"{machine['threads']} threads, allocator {machine['allocator']}; matmul peak {peak / 1e9:.1f} GFLOP/s")
    header = (f"{'preset':20s} {'GMACs':>9s} {'summary':>8s} {'(first)':>8s} {'forward':>9s} {'inspect':>9s} {'ratio':>6s} {'cpu ratio':>9s} "
              f"{'TFLOP/s':>8s} {'of peak':>7s}  captured")
    print(header)
    rows = []
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 1)
    for name in presets:
        peak = max(peak, matmul_throughput(device, dtype, seconds=0.5))
        row = bench_preset(name, device, dtype, max(1, repeat), args.warmup, peak, args.compile)
        rows.append(row)
        print(f"{name:20s} {row['gmacs']:9.2f} {row['summary_s']:7.3f}s {row['summary_s_first']:7.3f}s "
              f"{row['forward_s']:8.3f}s "
              f"{row['inspect_s']:8.3f}s {row['inspect_over_forward']:6.3f} {row['inspect_over_forward_cpu']:9.3f} "
              f"{row['achieved_tflops']:8.3f} "
              f"{row['fraction_of_matmul_peak']:7.1%}  {row['captured_layer']}", flush=True)
        if args.compile:
            print(f"{'':20s} compiled: first forward (compiling) {row['compile_s']:.1f}s, eager forward "
                  f"{row['eager_forward_s']:.3f}s, compiled / eager {row['compiled_over_eager']:.3f}"
                  + (f"; fell back to eager: {row['compile_fallback']}" if row["compile_fallback"] else ""),
                  flush=True)

    final_peak = max(peak, matmul_throughput(device, dtype, seconds=0.5))
    changed = any(row["fraction_of_matmul_peak"] != row["achieved_tflops"] * 1e12 / final_peak for row in rows)
    machine["matmul_peak_tflops"] = final_peak / 1e12
    if changed:
        print(f"# best matmul peak over the run: {final_peak / 1e9:.1f} GFLOP/s; fractions of it:")
        for row in rows:
            row["fraction_of_matmul_peak"] = row["achieved_tflops"] * 1e12 / final_peak
            print(f"#   {row['preset']:20s} {row['fraction_of_matmul_peak']:7.1%}")
    out = args.out or ROOT / "bench" / "results" / f"bench-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                               "cold_summary": {"preset": presets[0], **cold}, "results": rows}, indent=1))
    print(f"# written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
