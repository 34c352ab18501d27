"""Temporal sampling: which frames of a clip each published evaluation reads, for one view or several.

``rule`` names the code whose test-time sampling is reproduced (a recipe's ``clip_rule``):

- ``"slowfast"`` — PySlowFast with ``DATA.USE_OFFSET_SAMPLING`` (the MViT configs): a window of
  ``num_frames × sampling_rate`` frames at ``target_fps``, stretched to the clip's frame rate; one clip is centred
  (``floor(Δ / 2)``), clip ``i`` of ``n`` starts at ``i · floor(Δ / (n − 1))``; ``num_frames`` indices spread over
  the window with ``linspace`` and truncated (``temporal_sampling``);
- ``"timesformer"`` — the PySlowFast fork of the official TimeSformer: clip ``i`` of ``n`` starts at
  ``Δ · i / n`` (so a single clip starts at the first frame);
- ``"torchvision"`` — torchvision's video reference evaluation: the clip resampled to ``target_fps /
  sampling_rate`` (``VideoClips._resample_video_idx``), cut into every run of ``num_frames`` consecutive
  resampled frames, of which ``n`` are taken at ``linspace(0, runs − 1, n).floor()`` (``UniformClipSampler``);
- ``"mmaction"`` — MMAction2 ``SampleFrames(test_mode=True)`` (the official Video Swin): ``n`` clips of
  ``num_frames`` frames ``sampling_rate`` apart (raw frames, no frame-rate adjustment) at offsets
  ``int((i + ½) · avg)`` with ``avg = (total − span + 1) / n``, indices past the end wrapping around (``loop``).

Recipes without a ``sampling_rate`` sample uniformly: the middle frame of each of ``num_frames`` equal segments
(PySlowFast's Something-Something-v2 test and Video Swin's ``frame_uniform``), which has one view only.

Indices past the end of a short clip are clamped to the last frame (except ``mmaction``, which loops).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import ConfigError, VideoError

CLIP_RULES = ("slowfast", "timesformer", "torchvision", "mmaction")


def uniform_indices(total_frames: int, num_frames: int) -> list[int]:
    """The middle frame of each of ``num_frames`` equal segments of ``total_frames − 1``."""
    seg_size = float(total_frames - 1) / num_frames
    return [(int(np.round(seg_size * i)) + int(np.round(seg_size * (i + 1)))) // 2 for i in range(num_frames)]


def _slowfast(total: int, num_frames: int, rate: int, fps: float | None, target_fps: float, clip: int, clips: int,
              offset: bool) -> list[int]:
    clip_size = rate * num_frames * ((fps or target_fps) / target_fps)
    delta = max(total - clip_size, 0)
    if offset:
        start = math.floor(delta / 2) if clips == 1 else clip * math.floor(delta / (clips - 1))
    else:
        start = delta * clip / clips
    index = torch.linspace(start, start + clip_size - 1, num_frames)  # float32, truncated by .long() as in PySlowFast
    return torch.clamp(index, 0, total - 1).long().tolist()


def _torchvision(total: int, num_frames: int, rate: int, fps: float | None, target_fps: float, clip: int,
                 clips: int) -> list[int]:
    step = (fps or target_fps) / (target_fps / rate)
    if float(step).is_integer():
        resampled = list(range(0, total, int(step)))
    else:
        resampled = (torch.arange(math.floor(total / step), dtype=torch.float32) * step).floor().long().tolist()
    runs = len(resampled) - num_frames + 1
    if runs < 1:  # shorter than one clip: torchvision would skip the video; read what there is, last frame repeated
        padded = resampled + [resampled[-1] if resampled else total - 1] * (num_frames - len(resampled))
        return [min(i, total - 1) for i in padded[:num_frames]]
    start = int(torch.linspace(0, runs - 1, clips).floor().long()[clip])
    return resampled[start:start + num_frames]


def _mmaction(total: int, num_frames: int, rate: int, clip: int, clips: int) -> list[int]:
    span = num_frames * rate
    avg = (total - span + 1) / float(clips)
    offset = int(clip * avg + avg / 2.0) if total > span - 1 else 0
    return [int(i) for i in np.mod(offset + np.arange(num_frames) * rate, total)]


def clip_indices(total_frames: int, num_frames: int, sampling_rate: int | None = None, *, fps: float | None = None,
                 target_fps: float = 30.0, rule: str = "slowfast", clip: int = 0, clips: int = 1) -> list[int]:
    """Frame indices of temporal view ``clip`` of ``clips`` from a clip of ``total_frames`` frames (see the
    module's docstring for each ``rule``); ``sampling_rate=None`` samples uniformly (one view)."""
    if total_frames < 1:
        raise VideoError(f"cannot sample from a clip of {total_frames} frames")
    if num_frames < 1:
        raise ConfigError(f"num_frames={num_frames} is not allowed: num_frames must be ≥ 1", field="num_frames")
    if clips < 1 or not 0 <= clip < clips:
        raise ConfigError(f"temporal view {clip} of {clips} is not allowed: clips must be ≥ 1", field="clips")
    if sampling_rate is None:
        if clips > 1:
            raise ConfigError(f"uniform sampling (the whole clip in {num_frames} segments) has one temporal view; "
                              f"{clips} were asked for. Use clips=1 (spatial crops are still possible)",
                              field="clips")
        return uniform_indices(total_frames, num_frames)
    if sampling_rate < 1:
        raise ConfigError(f"sampling_rate={sampling_rate} is not allowed: sampling_rate must be ≥ 1",
                          field="sampling_rate")
    if rule in ("slowfast", "timesformer"):
        return _slowfast(total_frames, num_frames, sampling_rate, fps, target_fps, clip, clips,
                         offset=rule == "slowfast")
    if rule == "torchvision":
        return _torchvision(total_frames, num_frames, sampling_rate, fps, target_fps, clip, clips)
    if rule == "mmaction":
        return _mmaction(total_frames, num_frames, sampling_rate, clip, clips)
    raise ConfigError(f"clip_rule={rule!r} is not allowed: one of {', '.join(CLIP_RULES)}", field="clip_rule")


def sample_indices(total_frames: int, num_frames: int, sampling_rate: int | None = None, *,
                   fps: float | None = None, target_fps: float = 30.0) -> list[int]:
    """The single centred clip of PySlowFast's offset sampling (``rule="slowfast"``), or uniform sampling."""
    return clip_indices(total_frames, num_frames, sampling_rate, fps=fps, target_fps=target_fps)
