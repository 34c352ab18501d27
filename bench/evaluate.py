"""Evaluation throughput: clips/s of ``vac.evaluate`` for one preset with decoding in this process (``--workers 0``)
and in DataLoader workers overlapped with the forward (``--workers 2``), and where the time goes.

    python bench/evaluate.py [--preset mvit_v2_s] [--clips 12] [--views single] [--workers 0 2] [--set FIELD=VALUE]

Writes ``--clips`` synthetic 320×240 clips (``assets/generate_samples.py``'s scenes, 3 s at 25 fps) and an
MMAction2 list to a temporary folder, evaluates them with random weights (the work is the same as with published
weights) and prints, per worker count: clips/s, the seconds spent decoding (summed over the clips, in the workers
when there are some), in the forward, and waiting for decoded clips. The figures go to
``bench/results/evaluate.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "assets"))

import torch  # noqa: E402

import videoattn_core as vac  # noqa: E402
from generate_samples import SCENES, write_clip  # noqa: E402


def write_dataset(folder: Path, clips: int) -> Path:
    scenes = list(SCENES.values())
    lines = []
    for n in range(clips):
        write_clip(folder / f"clip{n}.mp4", scenes[n % len(scenes)], frames=75)
        lines.append(f"clip{n}.mp4 {n % 400}")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    return folder / "list.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mvit_v2_s")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--views", default="single")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    from videoattn_core.config import parse_assignments

    overrides = parse_assignments(type(vac.get_preset(args.preset).config), args.set, flag="--set")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp), args.clips)
        # a first pass of two clips so that both measured runs find the model's kernels and files warm
        vac.evaluate(args.preset, data, overrides=overrides, views=args.views, limit=2, workers=0,
                     device=args.device, match="index")
        for workers in args.workers:
            result = vac.evaluate(args.preset, data, overrides=overrides, views=args.views, workers=workers,
                                  batch_size=args.batch_size, device=args.device, match="index")
            t = result.throughput
            rows.append({"workers": workers, **t.to_dict()})
            print(f"{args.preset} {args.views} views, workers={workers}: {t.clips} clips in {t.wall_s:.1f} s = "
                  f"{t.clips_per_s:.2f} clips/s; decoding {t.decode_s:.1f} s, forward {t.forward_s:.1f} s, "
                  f"waiting for clips {t.wait_s:.1f} s")
    out = ROOT / "bench" / "results" / "evaluate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "views": args.views, "clips": args.clips,
                               "overrides": args.set, "threads": torch.get_num_threads(),
                               "machine": platform.processor() or platform.machine(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
