"""Synthetic test videos whose frames carry their own index, so a test can tell which frames were decoded.

Each frame shows a 12-bit binary code as black/white blocks (3 rows × 4 columns), robust to lossy codecs and to
GIF's small palette.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from videoattn_core.clips import writer

BITS = 12


def index_frame(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    for b in range(BITS):
        row, col = divmod(b, 4)
        if (i >> b) & 1:
            img[row * height // 3:(row + 1) * height // 3, col * width // 4:(col + 1) * width // 4] = 255
    return img


def read_index(img: np.ndarray) -> int:
    height, width = img.shape[:2]
    value = 0
    for b in range(BITS):
        row, col = divmod(b, 4)
        cy, cx = (2 * row + 1) * height // 6, (2 * col + 1) * width // 8
        if img[cy, cx].mean() > 127:
            value |= 1 << b
    return value


def write_video(path: Path, frames: int, *, height: int = 48, width: int = 64, fps: int = 30,
                codec: str = "libx264", gop: int = 30, pix_fmt: str = "yuv420p", options: dict | None = None,
                container_options: dict | None = None, draw=index_frame) -> Path:
    writer.write_video(path, (draw(i, height, width) for i in range(frames)), fps=fps, codec=codec, pix_fmt=pix_fmt,
                       gop=gop, options=options, container_options=container_options)
    return path


def write_audio(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        samples = (np.sin(np.arange(int(seconds * rate)) / 5.0) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
