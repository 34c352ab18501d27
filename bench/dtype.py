"""bfloat16 against float32: per preset, the forward's time in each (alternating, same process, same random
weights) and how far bfloat16's logits are from float32's.

    .venv/bin/python bench/dtype.py [--presets timesformer_base,swin3d_t] [--device cpu|cuda] [--threads 2]

On a CPU with AMX or AVX-512 BF16 (``videoattn_core.run.devices.native_bfloat16``) oneDNN computes bfloat16 matmuls in
hardware; elsewhere they are emulated. Where the CPU has AVX-512 BF16 but no AMX tiles, bfloat16 attention runs as
blocked bfloat16 products (``videoattn_core.models.layers.blocked_attention``): the bfloat16 forward is then also
timed with PyTorch's fused kernel instead (``fused``, in the same alternation), and its logits' error printed
beside. Writes ``bench/results/dtype.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import videoattn_core as vac  # noqa: E402
from run import synchronize, use_allocator  # noqa: E402
from videoattn_core.models import layers  # noqa: E402
from videoattn_core.run.devices import native_bfloat16  # noqa: E402

PRESETS = ("timesformer_base", "mvit_v2_s", "swin3d_t", "videomae_base", "vivit_b", "vjepa2_vitl")


@contextmanager
def fused_kernel(enabled: bool) -> Iterator[None]:
    """Within the block (when ``enabled``) bfloat16 attention takes PyTorch's fused kernel, as it did before
    ``layers.blocked_attention``."""
    if not enabled:
        yield
        return
    chosen = layers._takes_blocked_attention
    layers._takes_blocked_attention = lambda *tensors: False
    try:
        yield
    finally:
        layers._takes_blocked_attention = chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="timed forwards of each dtype, alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dtype.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    use_allocator("kept", device.type)  # as the app and the command line run forwards far from the memory's limit
    native = native_bfloat16(device)
    print(f"# {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; bfloat16 in hardware: {native}")
    blocked = device.type == "cpu" and layers.fused_attention_slow_in_bfloat16()  # else the fused kernel anyway
    print(f"{'preset':20s} {'float32':>9s} {'bfloat16':>9s} {'bf16/f32':>8s} {'logits rel. error':>17s}"
          + (f" {'fused':>9s} {'bf16/fused':>10s} {'fused error':>11s}" if blocked else ""))
    rows = []
    for name in (p.strip() for p in args.presets.split(",") if p.strip()):
        torch.manual_seed(0)
        f32 = vac.build_model(name, device=device).eval()
        bf16 = vac.build_model(name, device=device).eval()
        bf16.load_state_dict(f32.state_dict())
        bf16 = bf16.to(torch.bfloat16)
        x = torch.randn(f32.config.input_shape(), device=device)
        runs = [("float32", f32, x, False), ("bfloat16", bf16, x.bfloat16(), False)]
        if blocked:
            runs.append(("fused", bf16, x.bfloat16(), True))
        times: dict[str, list[float]] = {key: [] for key, *_ in runs}
        logits = {}
        with torch.no_grad():
            for round_ in range(args.rounds + 1):  # the first: warm-up, and the logits
                for key, model, inputs, fused in runs:
                    with fused_kernel(fused):
                        synchronize(device)
                        start = time.perf_counter()
                        out = model(inputs)
                        synchronize(device)
                    if round_:
                        times[key].append(time.perf_counter() - start)
                    else:
                        logits[key] = out.float()
        reference = logits["float32"]
        row = {"preset": name, "float32_s": min(times["float32"]), "bfloat16_s": min(times["bfloat16"]),
               "logits_relative_error": float((logits["bfloat16"] - reference).norm() / reference.norm())}
        row["bfloat16_over_float32"] = row["bfloat16_s"] / row["float32_s"]
        line = (f"{name:20s} {row['float32_s']:8.3f}s {row['bfloat16_s']:8.3f}s {row['bfloat16_over_float32']:8.2f} "
                f"{row['logits_relative_error']:17.4f}")
        if blocked:
            row["fused_bfloat16_s"] = min(times["fused"])
            row["bfloat16_over_fused"] = row["bfloat16_s"] / row["fused_bfloat16_s"]
            row["fused_logits_relative_error"] = float((logits["fused"] - reference).norm() / reference.norm())
            line += (f" {row['fused_bfloat16_s']:8.3f}s {row['bfloat16_over_fused']:10.2f} "
                     f"{row['fused_logits_relative_error']:11.4f}")
        rows.append(row)
        print(line, flush=True)
        del f32, bf16
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": str(device), "torch": torch.__version__, "native_bfloat16": native,
                                    "threads": torch.get_num_threads(), "rows": rows}, indent=1))
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
