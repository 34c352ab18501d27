"""Decoding benchmark: time to get 16 frames from a long clip by seeking versus decoding from the start.

    python bench/decode.py [--minutes 10] [--size 320x180] [--repeats 3]

Writes a synthetic long clip (H.264, 30 fps, one keyframe every 2 s) to a temporary directory, then reads 16
frames with :func:`videoattn_core.read_clip` for two recipes — a centred 16 × 4 window (MViT/torchvision) and 16
frames spread uniformly over the whole clip (SSv2-style) — once seeking to the needed keyframes and once decoding
from the start. Prints the figures and writes them to ``bench/results/decode.json`` (git-ignored).
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

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videoattn_core.clips.decode import read_clip  # noqa: E402
from videoattn_core.clips.writer import write_video  # noqa: E402


def write_long_clip(path: Path, frames: int, width: int, height: int, fps: int = 30, gop: int = 60) -> None:
    """A moving gradient with a frame counter bar: cheap to encode, not trivially compressible."""
    y, x = np.mgrid[0:height, 0:width]
    def frame(i: int) -> np.ndarray:
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (x + 3 * i) % 256
        img[..., 1] = (y + 2 * i) % 256
        img[..., 2] = (x + y + i) % 256
        img[: height // 10, : int(width * i / frames) + 1] = 255
        return img

    write_video(path, (frame(i) for i in range(frames)), fps=fps, gop=gop,
                options={"preset": "ultrafast", "crf": "28"})


def time_read(path: Path, rate: int | None, seek: bool, repeats: int) -> dict:
    times, clip = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        clip = read_clip(path, 16, rate, seek=seek)
        times.append(time.perf_counter() - t0)
    return {"seconds_median": statistics.median(times), "seconds_min": min(times),
            "frames_decoded": clip.frames_decoded, "seeks": clip.seeks, "indices": list(clip.frame_indices)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic clip (default 10)")
    parser.add_argument("--size", default="320x180", help="frame size WxH (default 320x180)")
    parser.add_argument("--repeats", type=int, default=3, help="timed reads per case; the median is reported")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "decode.json")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = int(round(args.minutes * 60 * 30))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        t0 = time.perf_counter()
        write_long_clip(path, frames, width, height)
        encode_s = time.perf_counter() - t0
        results = {}
        for recipe, rate in (("window_16x4", 4), ("uniform_16", None)):
            seeking = time_read(path, rate, True, args.repeats)
            linear = time_read(path, rate, False, args.repeats)
            assert seeking["indices"] == linear["indices"], "seeking returned other frames than decoding in order"
            results[recipe] = {"seek": seeking, "from_start": linear,
                               "speedup": linear["seconds_median"] / seeking["seconds_median"]}
        size_mb = path.stat().st_size / 1e6

    report = {
        "clip": {"frames": frames, "fps": 30, "minutes": args.minutes, "width": width, "height": height,
                 "codec": "h264", "gop": 60, "file_mb": round(size_mb, 2), "encode_seconds": round(encode_s, 2)},
        "results": results,
        "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "pyav": av.__version__, "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    print(f"clip: {frames} frames ({args.minutes:g} min at 30 fps), {width}×{height} H.264, keyframe every 2 s, "
          f"{size_mb:.1f} MB")
    print(f"{'recipe':<14}{'mode':<12}{'median s':>10}{'frames decoded':>16}{'seeks':>7}")
    for recipe, r in results.items():
        for mode in ("seek", "from_start"):
            m = r[mode]
            print(f"{recipe:<14}{mode:<12}{m['seconds_median']:>10.3f}{m['frames_decoded']:>16d}{m['seeks']:>7d}")
        print(f"{'':<14}{'speedup':<12}{r['speedup']:>10.1f}×")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
