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
  ``int((i + ½) · avg)`` with ``avg = (total − span + 1) / n``, indices past the end wrapping around (``loop``);
- ``"videomae"`` — the official VideoMAE test loader (``kinetics.py``, ``VideoClsDataset`` in test mode): every
  ``sampling_rate``-th raw frame of the whole clip (the last repeated up to ``num_frames``), of which clip ``i`` of
  ``n`` takes the ``num_frames`` consecutive ones from ``int(i · max((m − num_frames) / (n − 1), 0))``, ``m`` the
  number of subsampled frames. The source has no single-view test (``n = 1`` divides by zero); one view here is
  the centred window ``int(max(m − num_frames, 0) / 2)``, the middle view of any odd ``n``.

Recipes without a ``sampling_rate`` sample uniformly: the middle frame of each of ``num_frames`` equal segments
(PySlowFast's Something-Something-v2 test and Video Swin's ``frame_uniform``), which has one view only — except
with ``rule="videomae"`` (``ssv2.py``, ``SSVideoClsDataset`` in test mode), which cuts the clip into ``num_frames``
segments of ``tick = total / num_frames`` frames and has two views: view 0 reads each segment's first frame
``int(tick · k)``, view 1 its middle ``int(tick / 2 + tick · k)`` (the sorted union of both, even then odd
positions); a single view (``--test_num_segment 1``) is view 0.

``"huggingface"`` — transformers' ``VideoClassificationPipeline`` (``preprocess``): ``num_frames`` indices
``np.linspace(0, num_frames · sampling_rate − 1, num_frames)`` cast to int64, from the first frame, whatever the
clip's length or frame rate (the pipeline's ``frame_sampling_rate``, 1 by default). It has one temporal view.

Indices past the end of a short clip are clamped to the last frame (except ``mmaction``, which loops; the
pipeline itself would hand the processor fewer frames).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, VideoError

CLIP_RULES = ("slowfast", "timesformer", "torchvision", "mmaction", "videomae", "huggingface")


def max_clips(rule: str, sampling_rate: int | None) -> int | None:
    """How many temporal views ``rule`` defines: ``None`` for any number, 1 or 2 for uniform sampling, 1 for the
    Hugging Face pipeline."""
    if rule == "huggingface":
        return 1
    if sampling_rate is not None:
        return None
    return 2 if rule == "videomae" else 1


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


def _videomae_window(total: int, num_frames: int, rate: int, clip: int, clips: int) -> list[int]:
    subsampled = list(range(0, total, rate))
    subsampled += [subsampled[-1]] * (num_frames - len(subsampled))  # short clips: the last frame repeated
    spare = len(subsampled) - num_frames
    start = int(clip * max(spare / (clips - 1), 0)) if clips > 1 else int(max(spare, 0) / 2)
    return subsampled[start:start + num_frames]


def _videomae_segments(total: int, num_frames: int, clip: int) -> list[int]:
    tick = total / float(num_frames)
    if clip == 0:
        return [int(tick * k) for k in range(num_frames)]
    return [int(tick / 2.0 + tick * k) for k in range(num_frames)]


def _huggingface(total: int, num_frames: int, rate: int) -> list[int]:
    index = np.linspace(0, num_frames * rate - 1, num=num_frames, dtype=np.int64)
    return [min(int(i), total - 1) for i in index]


def clip_indices(total_frames: int, num_frames: int, sampling_rate: int | None = None, *, fps: float | None = None,
                 target_fps: float = 30.0, rule: str = "slowfast", clip: int = 0, clips: int = 1) -> list[int]:
    """Frame indices of temporal view ``clip`` of ``clips`` from a clip of ``total_frames`` frames (see the
    module's docstring for each ``rule``); ``sampling_rate=None`` samples uniformly (one view; two for
    ``"videomae"``)."""
    if total_frames < 1:
        raise VideoError(f"cannot sample from a clip of {total_frames} frames")
    if num_frames < 1:
        raise ConfigError(f"num_frames={num_frames} is not allowed: num_frames must be ≥ 1", field="num_frames")
    if clips < 1 or not 0 <= clip < clips:
        raise ConfigError(f"temporal view {clip} of {clips} is not allowed: clips must be ≥ 1", field="clips")
    if rule not in CLIP_RULES:
        raise ConfigError(f"clip_rule={rule!r} is not allowed: one of {', '.join(CLIP_RULES)}", field="clip_rule")
    if rule == "huggingface":
        if clips > 1:
            raise ConfigError(f"the Hugging Face pipeline reads one temporal view from the first frame; {clips} were "
                              f"asked for. Use clips = 1 (spatial crops are still possible)", field="clips")
        if sampling_rate is not None and sampling_rate < 1:
            raise ConfigError(f"sampling_rate={sampling_rate} is not allowed: sampling_rate must be ≥ 1",
                              field="sampling_rate")
        return _huggingface(total_frames, num_frames, sampling_rate or 1)
    if sampling_rate is None:
        most = max_clips(rule, sampling_rate)
        if clips > most:
            views = "one temporal view" if most == 1 else f"{most} temporal views"
            raise ConfigError(f"uniform sampling (the whole clip in {num_frames} segments) with clip_rule={rule!r} "
                              f"has {views}; {clips} were asked for. Use clips ≤ {most} (spatial crops are still "
                              f"possible)", field="clips")
        if rule == "videomae":
            return _videomae_segments(total_frames, num_frames, clip)
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
    return _videomae_window(total_frames, num_frames, sampling_rate, clip, clips)


def sample_indices(total_frames: int, num_frames: int, sampling_rate: int | None = None, *,
                   fps: float | None = None, target_fps: float = 30.0) -> list[int]:
    """The single centred clip of PySlowFast's offset sampling (``rule="slowfast"``), or uniform sampling."""
    return clip_indices(total_frames, num_frames, sampling_rate, fps=fps, target_fps=target_fps)


def parse_views(views: str | tuple[int, int] | None, recipe: Any) -> tuple[int, int]:
    """``"single"`` (or ``None``): one view; ``"protocol"``: the recipe's published clips × crops; ``"CxK"`` or a
    tuple: C temporal clips × K spatial crops (K is 1 or 3)."""
    if views is None or views == "single":
        return 1, 1
    if views == "protocol":
        return recipe.clips, recipe.crops
    if isinstance(views, str):
        parts = views.lower().replace("×", "x").split("x")
        try:
            clips, crops = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"views={views!r} is not allowed: views must be single, protocol or CLIPSxCROPS "
                              f"(e.g. 5x3)", field="views") from None
    else:
        clips, crops = views
    if not 1 <= clips <= 64 or crops not in (1, 3):
        raise ConfigError(f"views={clips}x{crops} is not allowed: 1 to 64 temporal clips × 1 or 3 spatial crops",
                          field="views")
    most = max_clips(recipe.clip_rule, recipe.sampling_rate)
    if most is not None and clips > most:
        views = "one temporal view" if most == 1 else f"{most} temporal views ({recipe.clip_rule})"
        raise ConfigError(f"views={clips}x{crops} is not allowed: this recipe samples the whole clip uniformly, "
                          f"which has {views}; use {most}x{crops}", field="views")
    return clips, crops
