"""Clips: decode a video with PyAV, sample the frames a recipe reads, and make the model's input tensors.

Which frames are read follows each source's test-time sampling (:mod:`videoattn_core.clips.sampling`); how they are
resized and cropped follows its transform (:mod:`videoattn_core.clips.preprocessing`). Only the frames that are needed
are decoded: before a far-away frame the decoder seeks to the keyframe before it instead of decoding everything in
between, so a window deep into a long video costs a seek, not a decode from the start. Indices past the end of a
short clip repeat its last frame, and the returned :class:`Clip` says how many frames were repeated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError, VideoError
from .probe import (
    DEFAULT_LIMITS,
    ClipInfo,
    Limits,
    count_frames,
    ffmpeg_errors,
    open_container,
    read_info,
    reason,
    video_stream,
)
from .sampling import clip_indices

SAMPLINGS = ("window", "uniform")


@dataclass
class Clip:
    """Sampled frames ``(T, H, W, 3)`` uint8 RGB and how they were obtained.

    ``indices`` are the frame indices the recipe asked for; ``frame_indices`` the index of the frame actually
    returned at each position (equal to ``indices`` except past the end of a clip or where a format's timestamps
    are coarse). ``padded_frames`` counts positions that repeat an earlier frame because the clip is shorter than
    the recipe's window.
    """

    frames: np.ndarray
    info: ClipInfo
    sampling: str
    sampling_rate: int | None
    indices: tuple[int, ...]
    frame_indices: tuple[int, ...]
    padded_frames: int
    downscaled: bool
    frames_decoded: int
    seeks: int
    decode_seconds: float
    notes: list[str] = field(default_factory=list)
    clips: int = 1  # temporal views, their frames one after the other in ``frames``

    @property
    def padded(self) -> bool:
        return self.padded_frames > 0

    @property
    def num_frames(self) -> int:
        """Frames per temporal view."""
        return int(self.frames.shape[0]) // self.clips

    def view_frames(self, clip: int) -> np.ndarray:
        """The frames ``(T, H, W, 3)`` of temporal view ``clip``."""
        return self.frames[clip * self.num_frames:(clip + 1) * self.num_frames]

    def summary(self) -> str:
        """What was read, in words: the frames per view and the source frames they span, as the recipe's rule
        placed them."""
        i = self.info
        how = ", uniformly" if self.sampling == "uniform" else ""
        views = f" in each of {self.clips} temporal views" if self.clips > 1 else ""
        span = f"source frames {min(self.frame_indices)}–{max(self.frame_indices)}" if self.frame_indices else ""
        text = (f"{self.num_frames} frames{views} ({span}{how}) of {i.num_frames} ({i.width}×{i.height} {i.codec}"
                f"{f', {i.fps:.3g} fps' if i.fps else ''})")
        if self.padded:
            text += f"; {self.padded_frames} repeated (clip shorter than the window)"
        return text


# ----------------------------------------------------------------------------------------------- decoding


class _Decoder:
    """Walks a stream's frames in order, knows each frame's index and can seek towards a later one."""

    #: codecs without keyframes to seek to, or with irregular frame timing (GIF delays are in 1/100 s)
    NO_SEEK = ("gif", "apng", "webp")

    def __init__(self, container, stream, info: ClipInfo, allow_seek: bool):
        self.container, self.stream, self.info = container, stream, info
        self.time_base = stream.time_base
        self.start_pts = stream.start_time if stream.start_time is not None else 0
        self.allow_seek = (allow_seek and info.fps is not None and self.time_base is not None
                           and info.codec not in self.NO_SEEK)
        self.seeks = 0
        self.decoded = 0
        self._counter = -1
        self._frames = self._iterate()

    def _iterate(self) -> Iterator[Any]:
        return iter(self.container.decode(self.stream))

    def index_of(self, frame) -> int:
        """Decoding in order from the start, a frame's index is its rank; after a seek, its timestamp × fps."""
        self._counter += 1
        if self.seeks == 0 or frame.pts is None:
            if frame.pts is None:
                self.allow_seek = False
            return self._counter
        return int(round(float((frame.pts - self.start_pts) * self.time_base) * self.info.fps))

    def seek_to(self, index: int) -> None:
        target = self.start_pts + int(index / self.info.fps / self.time_base)
        try:
            self.container.seek(max(target, self.start_pts), stream=self.stream, backward=True, any_frame=False)
        except ffmpeg_errors() + (ValueError, OSError):
            self.allow_seek = False  # not seekable: carry on decoding in order
            return
        self.seeks += 1
        self._frames = self._iterate()

    def next(self):
        frame = next(self._frames, None)
        if frame is not None:
            self.decoded += 1
        return frame


def read_clip(source: str | Path | bytes, num_frames: int, sampling_rate: int | None = None, *,
              sampling: str | None = None, target_fps: float = 30.0, limits: Limits | None = None,
              seek: bool = True, seek_gap: int | None = None, rule: str = "slowfast", clips: int = 1,
              indices: Sequence[Sequence[int]] | None = None) -> Clip:
    """Decode the ``num_frames`` frames a recipe samples from a video file (path or bytes).

    ``sampling_rate`` given: "window" sampling, a centred window of ``num_frames × sampling_rate`` frames at
    ``target_fps``; ``None``: "uniform" sampling over the whole clip. ``rule`` and ``clips`` pick the temporal views
    (see :mod:`videoattn_core.clips.sampling`); the frames of all views come back one after the other. ``seek=False``
    decodes from the start instead of seeking (for comparison); ``seek_gap`` is the distance in frames beyond
    which the decoder seeks rather than decodes forward (default: one second of video, at least 16 frames).
    ``indices`` (one list of ``num_frames`` source frames per view, a run plan's ``frame_indices``) are read as they
    are instead of being sampled again; one that the file does not have is a :class:`VideoError`.

    Raises :class:`VideoError` for a missing, empty, oversized, corrupt, truncated, audio-only or non-video file.
    """
    limits = limits or DEFAULT_LIMITS
    sampling = sampling or ("uniform" if sampling_rate is None else "window")
    if sampling not in SAMPLINGS:
        raise ConfigError(f"sampling={sampling!r} is not allowed: sampling must be one of {', '.join(SAMPLINGS)}",
                          field="sampling")
    if sampling == "window" and sampling_rate is None:
        raise ConfigError("window sampling needs a sampling_rate (frames between samples at 30 fps)",
                          field="sampling_rate")
    if sampling == "uniform":
        sampling_rate = None

    def indices_for(info: ClipInfo) -> list[int]:
        if indices is not None:
            planned = [int(i) for view in indices for i in view]
            if len(indices) != clips or any(len(view) != num_frames for view in indices):
                raise ConfigError(f"the planned frame indices are {len(indices)} views of "
                                  f"{sorted({len(v) for v in indices})} frames, not {clips} of {num_frames}",
                                  field="frame_indices")
            if planned and not 0 <= min(planned) <= max(planned) < info.num_frames:
                raise VideoError(f"{info.source}: the planned frames {min(planned)}–{max(planned)} are not all in "
                                 f"this clip, which has {info.num_frames} frames; plan the run with this clip")
            return planned
        return [i for c in range(clips) for i in clip_indices(
            info.num_frames, num_frames, sampling_rate, fps=info.fps, target_fps=target_fps, rule=rule, clip=c,
            clips=clips)]

    return _decode(source, indices_for, num_frames, sampling_rate, target_fps, limits, seek, seek_gap, clips)


def read_frames(source: str | Path | bytes, indices: list[int], *, limits: Limits | None = None,
                seek: bool = True) -> Clip:
    """Decode the frames at ``indices`` (e.g. one window of a timeline), seeking to far-away ones; indices past
    the end of the clip repeat its last frame."""
    return _decode(source, lambda info: [min(i, info.num_frames - 1) for i in indices], len(indices), None, 30.0,
                   limits or DEFAULT_LIMITS, seek, None, 1)


def _decode(source, indices_for, num_frames, sampling_rate, target_fps, limits, seek, seek_gap, clips) -> Clip:
    t0 = time.perf_counter()
    container, name, size = open_container(source, limits)
    try:
        return _read(container, name, size, indices_for, num_frames, sampling_rate, target_fps, limits, seek,
                     seek_gap, t0, clips)
    finally:
        container.close()


def _read(container, name, size, indices_for, num_frames, sampling_rate, target_fps, limits, seek, seek_gap, t0,
          clips):
    stream = video_stream(container, name)
    stream.thread_type = "AUTO"
    info = read_info(container, stream, name, size, limits)
    if info.num_frames <= 0:
        info = count_frames(container, stream, info, name, limits, t0)

    indices = indices_for(info)
    decoder = _Decoder(container, stream, info, allow_seek=seek)
    gap = seek_gap if seek_gap is not None else max(16, int(round(info.fps or 16)))

    scale_to = None
    if info.width and info.height and max(info.width, info.height) > limits.decode_max_side:
        s = limits.decode_max_side / max(info.width, info.height)
        scale_to = (max(2, int(round(info.width * s / 2)) * 2), max(2, int(round(info.height * s / 2)) * 2))

    wanted = sorted(set(indices))
    got: dict[int, tuple[int, np.ndarray]] = {}
    current: tuple[int, Any] | None = None  # (index, frame) last decoded
    last_seen = -1
    try:
        for want in wanted:
            if current is not None and current[0] >= want:
                got[want] = (current[0], _to_rgb(current[1], scale_to))
                continue
            if decoder.allow_seek and want - last_seen > gap:
                decoder.seek_to(want)
            while True:
                if time.perf_counter() - t0 > limits.max_decode_seconds:
                    raise VideoError(f"{name}: decoding took longer than the limit of {limits.max_decode_seconds:g} s "
                                     f"(limits: {limits.describe()})")
                frame = decoder.next()
                if frame is None:
                    break
                idx = decoder.index_of(frame)
                last_seen = max(last_seen, idx)
                current = (idx, frame)
                if idx >= want:
                    got[want] = (idx, _to_rgb(frame, scale_to))
                    break
            if frame is None:
                break
    except ffmpeg_errors() as exc:
        raise VideoError(f"{name} is corrupt or truncated: decoding failed after {decoder.decoded} frames "
                         f"({reason(exc)})") from None

    notes: list[str] = []
    if not got and current is None:
        raise VideoError(f"{name} holds no decodable frames: the video stream is empty, corrupt or truncated")
    missing = [w for w in wanted if w not in got]
    if missing:
        last_index = current[0] if current is not None else -1
        if info.frame_count_from == "container index" and last_index + 1 < 0.9 * info.num_frames - 1:
            raise VideoError(f"{name} is truncated: its index announces {info.num_frames} frames but decoding ends "
                             f"after frame {last_index + 1}")
        filler = (current[0], _to_rgb(current[1], scale_to))  # the last frame the stream gave
        for w in missing:
            got[w] = filler
        notes.append(f"the stream ended at frame {filler[0]}, before frame {missing[0]}; the last frame is repeated")

    frame_indices = tuple(got[i][0] for i in indices)
    frames = np.stack([got[i][1] for i in indices])
    # per view: positions that repeat an earlier frame of the same view
    padded = sum(num_frames - len(set(frame_indices[c * num_frames:(c + 1) * num_frames])) for c in range(clips))
    window = sampling_rate * num_frames * ((info.fps or target_fps) / target_fps) if sampling_rate else None
    if padded:
        if window is not None and window > info.num_frames:
            notes.append(f"the clip has {info.num_frames} frames, fewer than the recipe's window of "
                         f"{window:.0f}; {padded} of {num_frames * clips} frames repeat earlier ones")
        else:
            notes.append(f"the clip has {info.num_frames} frames, fewer than the {num_frames} sampled; "
                         f"{padded} frames repeat earlier ones")
    if scale_to is not None:
        notes.append(f"frames of {info.width}×{info.height} were scaled to {scale_to[0]}×{scale_to[1]} while "
                     f"decoding (limit {limits.decode_max_side} px)")
    sampling = "uniform" if sampling_rate is None else "window"
    return Clip(frames=frames, info=info, sampling=sampling, sampling_rate=sampling_rate, indices=tuple(indices),
                frame_indices=frame_indices, padded_frames=padded, downscaled=scale_to is not None,
                frames_decoded=decoder.decoded, seeks=decoder.seeks, decode_seconds=time.perf_counter() - t0,
                notes=notes, clips=clips)


def _to_rgb(frame, scale_to: tuple[int, int] | None) -> np.ndarray:
    if scale_to is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=scale_to[0], height=scale_to[1], interpolation="AREA")
