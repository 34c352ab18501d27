"""Generate the synthetic sample clips in this directory (deterministic scenes with clear motion).

    python assets/generate_samples.py            # writes moving_square.mp4, rotating_bar.mp4, flash.mp4

Each clip is 10 s of 320×240 H.264 at 25 fps (250 frames, one keyframe a second: long enough for the
8 × 32-frame window of TimeSformer) on a textured grey background, small enough to keep in git:

- ``moving_square.mp4``: a red square crossing the frame from left to right;
- ``rotating_bar.mp4``: a white bar turning one and a half revolutions about the centre;
- ``flash.mp4``: a dark scene lit by a full-frame flash in frames 120–129.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 25, 250
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from videoattn_core.clips import writer  # noqa: E402


def _background(level: int = 110) -> np.ndarray:
    """A fixed, gently textured background (so the codec has something to keep static)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    texture = 12 * np.sin(x / 9.0) * np.cos(y / 13.0)
    img = np.clip(level + texture, 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


def moving_square(i: int) -> np.ndarray:
    img = _background()
    side = 48
    left = int(round((WIDTH - side) * i / (FRAMES - 1)))
    top = (HEIGHT - side) // 2
    img[top:top + side, left:left + side] = (220, 30, 30)
    return img


def rotating_bar(i: int) -> np.ndarray:
    img = _background()
    angle = 3 * np.pi * i / (FRAMES - 1)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    cx, cy = WIDTH / 2, HEIGHT / 2
    # distance from the bar's axis and position along it
    along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    bar = (np.abs(along) <= 90) & (np.abs(across) <= 8)
    img[bar] = (245, 245, 245)
    return img


def flash(i: int) -> np.ndarray:
    if 120 <= i < 130:
        return _background(level=235)
    img = _background(level=40)
    img[100:140, 140:180] = (60, 60, 180)  # a dim blue patch, to see that the scene stays the same
    return img


SCENES = {"moving_square.mp4": moving_square, "rotating_bar.mp4": rotating_bar, "flash.mp4": flash}


def write_clip(path: Path, draw, frames: int = FRAMES, fps: int | Fraction = FPS) -> None:
    """``frames`` frames of ``draw(i)`` (RGB, all of one size) as H.264, one keyframe a second."""
    writer.write_video(path, (draw(i) for i in range(frames)), fps=fps, gop=round(fps),
                       options={"crf": "26", "preset": "medium"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: assets/)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in SCENES.items():
        path = args.out / name
        write_clip(path, draw)
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
