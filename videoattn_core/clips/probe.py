"""Opening a video and reading what its container says (size, frame rate, frame count) without decoding it, within
configurable :class:`Limits`; every failure a :class:`~videoattn_core.errors.VideoError` saying what was wrong."""

from __future__ import annotations

import io
import math
import re
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import VideoError
from ..units import human_bytes

_FORMATS = ("MP4/MOV (H.264, H.265, MPEG-4), WebM/MKV (VP8, VP9, AV1), AVI, GIF, or a still image; anything "
            "FFmpeg decodes")


@dataclass(frozen=True)
class Limits:
    """Bounds on what :func:`read_clip` accepts; every one is configurable.

    ``decode_max_side`` is not a refusal: frames whose longer side exceeds it are scaled down while they are
    decoded (area interpolation), which keeps memory bounded for 4K and larger video.
    """

    max_file_bytes: int = 2 * 1024 ** 3
    max_side: int = 16384
    max_decode_seconds: float = 120.0
    decode_max_side: int = 1920
    max_counted_packets: int = 1_000_000

    def describe(self) -> str:
        return (f"at most {human_bytes(self.max_file_bytes, 1)}, frames up to {self.max_side} px a side, "
                f"decoding within {self.max_decode_seconds:g} s")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ClipInfo:
    """What the container says about a clip (and how its frame count was obtained)."""

    source: str
    container: str
    codec: str
    width: int
    height: int
    fps: float | None
    duration: float | None
    num_frames: int
    frame_count_from: str  # "container index", "duration × fps" or "counted packets"
    file_bytes: int | None
    has_audio: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ffmpeg_errors() -> tuple[type[BaseException], ...]:
    import av
    return (av.error.FFmpegError,)  # InvalidDataError and every other FFmpeg failure derive from it


def open_container(source: str | Path | bytes | bytearray | memoryview, limits: Limits):
    """Open a container; return ``(container, name, file_bytes)`` or raise :class:`VideoError`."""
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name, size = "the uploaded clip", len(data)
        target: Any = io.BytesIO(data)
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise VideoError(f"{name} does not exist")
        if not path.is_file():
            raise VideoError(f"{name} is not a file (expected a video: {_FORMATS})")
        size = path.stat().st_size
        target = str(path)
    if size == 0:
        raise VideoError(f"{name} is empty (0 bytes); expected a video: {_FORMATS}")
    if size > limits.max_file_bytes:
        raise VideoError(f"{name} is {human_bytes(size, 1)}, over the limit of {human_bytes(limits.max_file_bytes, 1)} "
                         f"(limits: {limits.describe()})")
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except ffmpeg_errors() + (OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoError(f"{name} is not a video FFmpeg can read ({reason(exc)}); expected {_FORMATS}") from None
    return container, name, size


def reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    # FFmpeg errors repeat the file name; keep the reason only
    return text.split(": '")[0] if ": '" in text else text


def _fraction(value: Any) -> float | None:
    try:
        f = float(Fraction(value)) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if f and math.isfinite(f) and f > 0 else None


def read_info(container, stream, name: str, size: int | None, limits: Limits) -> ClipInfo:
    cc = stream.codec_context
    width, height = int(cc.width or 0), int(cc.height or 0)
    if max(width, height) > limits.max_side:
        raise VideoError(f"{name} has frames of {width}×{height} px, over the limit of {limits.max_side} px a side "
                         f"(limits: {limits.describe()})")
    fps = _fraction(stream.average_rate) or _fraction(stream.guessed_rate) or _fraction(stream.base_rate)
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        duration = None
    frames, origin = int(stream.frames or 0), "container index"
    if frames <= 0 and duration and fps:
        frames, origin = max(1, int(round(duration * fps))), "duration × fps"
    return ClipInfo(source=name, container=container.format.name, codec=cc.name, width=width, height=height,
                    fps=fps, duration=duration, num_frames=frames, frame_count_from=origin, file_bytes=size,
                    has_audio=bool(container.streams.audio))


def _count_packets(container, stream, name: str, limits: Limits, t0: float) -> int:
    """Count a stream's frames by demuxing (no decoding), for formats whose headers do not say."""
    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                count += 1
            if count > limits.max_counted_packets or time.perf_counter() - t0 > limits.max_decode_seconds:
                raise VideoError(f"{name}: counting its frames exceeded the limits ({limits.describe()})")
        container.seek(0, stream=stream)
    except ffmpeg_errors() as exc:
        raise VideoError(f"{name} is corrupt: reading it failed ({reason(exc)})") from None
    return count


def probe_clip(source: str | Path | bytes, limits: Limits | None = None) -> ClipInfo:
    """What a clip holds (size, frame rate, frame count) without decoding a frame; for plans and timelines."""
    limits = limits or DEFAULT_LIMITS
    t0 = time.perf_counter()
    container, name, size = open_container(source, limits)
    try:
        stream = video_stream(container, name)
        info = read_info(container, stream, name, size, limits)
        if info.num_frames <= 0:
            info = count_frames(container, stream, info, name, limits, t0)
        return info
    finally:
        container.close()


def video_stream(container, name: str):
    """The first video stream of ``container``, which FFmpeg knows how to decode; a :class:`VideoError` otherwise."""
    if not container.streams.video:
        if container.streams.audio:
            context = container.streams.audio[0].codec_context
            codec = context.name if context is not None else "a codec FFmpeg does not know"
            raise VideoError(f"{name} has no video stream: it is audio only ({codec}); expected a video: {_FORMATS}")
        raise VideoError(f"{name} has no video stream; expected a video: {_FORMATS}")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # a damaged header: FFmpeg sees a video stream but not its codec
        raise VideoError(f"{name} is corrupt or uses a codec FFmpeg does not know: its video stream names no codec "
                         f"it can decode; expected {_FORMATS}")
    return stream


def count_frames(container, stream, info: ClipInfo, name: str, limits: Limits, t0: float) -> ClipInfo:
    counted = _count_packets(container, stream, name, limits, t0)
    if counted == 0:
        raise VideoError(f"{name} holds no video frames (empty, corrupt or truncated stream)")
    return replace(info, num_frames=counted, frame_count_from="counted packets")
