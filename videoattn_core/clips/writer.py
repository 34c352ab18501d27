"""Writing frames to a video file with PyAV: the one writer behind the overlays the app and the ``explain`` command
export, the sample clips of ``assets/``, the benchmark's long clip and the tests' clips."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from ..errors import ConfigError

#: what :func:`encode_video` writes: container format, codec and pixel format
KINDS = {"mp4": ("mp4", "libx264", "yuv420p"), "gif": ("gif", "gif", "rgb8")}


def write_video(target: str | Path | BinaryIO, frames: Iterable[np.ndarray], *, fps: int | Fraction = 30,
                codec: str = "libx264", pix_fmt: str = "yuv420p", gop: int | None = None,
                options: dict[str, str] | None = None, container_format: str | None = None,
                container_options: dict[str, str] | None = None, comment: str | None = None) -> None:
    """Encode ``frames`` — ``(H, W, 3)`` uint8 RGB arrays, all of one size, read one at a time (a generator keeps a
    long clip out of memory) — into ``target`` (a path, or a binary file object with ``container_format``).

    4:2:0 chroma (``yuv420p``, ``yuv420p10le``…) needs even sizes: odd ones are padded by repeating the last row or
    column. ``gop`` is the keyframe interval in frames, ``options`` the codec's (``{"crf": "26"}``), ``comment`` goes
    into the container's metadata (MP4; a GIF has none)."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ConfigError("there are no frames to write: a video needs at least one", field="frames")
    pad = (first.shape[0] % 2, first.shape[1] % 2) if pix_fmt.startswith("yuv420") else (0, 0)
    opened = str(target) if isinstance(target, (str, Path)) else target
    with av.open(opened, "w", format=container_format, options=container_options or {}) as container:
        if comment and container_format != "gif":
            container.metadata["comment"] = comment
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = first.shape[0] + pad[0], first.shape[1] + pad[1]
        stream.pix_fmt = pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if options:
            stream.options = options
        for frame in itertools.chain([first], frames):
            if any(pad):
                frame = np.pad(frame, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def encode_video(frames: np.ndarray, path: str | Path | None = None, *, fps: float = 4.0, kind: str = "mp4",
                 comment: str | None = None) -> bytes:
    """``(T, H, W, 3)`` uint8 frames as MP4 (H.264, yuv420p) or GIF, at ``fps`` rounded to a whole rate (at least
    1), ``comment`` in an MP4's metadata; returns the bytes, and writes them to ``path`` when given."""
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is not allowed: mp4 or gif", field="out")
    container_format, codec, pix_fmt = KINDS[kind]
    buffer = io.BytesIO()
    write_video(buffer, frames, fps=max(1, round(fps)), codec=codec, pix_fmt=pix_fmt,
                container_format=container_format, comment=comment)
    data = buffer.getvalue()
    if path is not None:
        try:
            Path(path).write_bytes(data)
        except OSError as exc:
            raise ConfigError(f"--out {str(path)!r} cannot be written: {exc.strerror or exc}", field="out") from None
    return data
