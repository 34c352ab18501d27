"""Timeline benchmark: predictions over a long clip, seconds per window, and what seeking saves.

    python bench/timeline.py [--minutes 20] [--stride 60] [--model timesformer_base] [--threads N]

Writes a synthetic clip (H.264, 30 fps, one keyframe every 2 s) to a temporary directory and runs
``vac.predict_timeline`` over it (random weights: the cost does not depend on them), timing each window's decode
(seek + decode of the sampled frames) and forward. For comparison, reads the last window's frames once more decoding
from the start. Prints the figures and writes them to ``bench/results/timeline.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decode import write_long_clip  # noqa: E402


def main() -> int:
    import torch

    import videoattn_core as vac
    from videoattn_core.clips import decode as video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--stride", type=float, default=60, help="seconds between windows")
    parser.add_argument("--model", default="timesformer_base")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))

    decode_times: list[float] = []
    original = video.read_frames

    def timed_read(*a, **k):  # what each window spends decoding (seek + the sampled frames)
        t0 = time.perf_counter()
        clip = original(*a, **k)
        decode_times.append(time.perf_counter() - t0)
        return clip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        frames = int(args.minutes * 60 * 30)
        t0 = time.perf_counter()
        write_long_clip(path, frames, width, height)
        print(f"wrote {frames} frames ({args.minutes:g} min) in {time.perf_counter() - t0:.1f} s", flush=True)

        video.read_frames = timed_read
        try:
            t0 = time.perf_counter()
            result = vac.predict_timeline(args.model, path, stride_s=args.stride, device="cpu")
            total = time.perf_counter() - t0
        finally:
            video.read_frames = original
        windows = result["windows"]
        last = windows[-1]["frame_indices"]
        t0 = time.perf_counter()
        linear = video.read_frames(path, last, seek=False)
        from_start = time.perf_counter() - t0

    per_window = total / len(windows)
    decode = statistics.median(decode_times)
    figures = {
        "model": args.model, "clip_minutes": args.minutes, "stride_s": args.stride, "windows": len(windows),
        "seconds_total": total, "seconds_per_window": per_window, "decode_seconds_per_window_median": decode,
        "forward_and_rest_seconds_per_window": per_window - statistics.mean(decode_times),
        "last_window_decoded_from_start_seconds": from_start, "last_window_frames_decoded_from_start":
            linear.frames_decoded, "seek_speedup_on_last_window": from_start / decode_times[-1],
        "threads": args.threads, "machine": platform.machine(), "torch": torch.__version__,
    }
    for key, value in figures.items():
        print(f"{key:44s} {value:.3f}" if isinstance(value, float) else f"{key:44s} {value}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeline.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
