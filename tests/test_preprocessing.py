"""Preprocessing and temporal sampling against each source's published definition.

References, never our own reading of them:
- torchvision ``VideoClassification``: the outputs of torchvision itself in ``../shared/reference/preprocess/cases.pt``
  (real-video sizes, landscape and portrait, downscales and an upscale);
- Hugging Face image processors: ``hf_cases.pt``, the outputs of ``VideoMAEImageProcessor`` (PIL backend);
- PySlowFast: its test-time code transcribed step by step (``tensor_normalize``, then
  ``random_short_side_scale_jitter`` with min = max, then ``uniform_crop``; ``get_start_end_idx`` and
  ``temporal_sampling``), in its own order of operations;
- MMAction2: ``SampleFrames._get_test_clips``, ``mmcv.rescale_size`` + ``mmcv.imresize`` (OpenCV) and ``ThreeCrop``
  transcribed the same way;
- torchvision's video reference evaluation: ``VideoClips._resample_video_idx`` and ``UniformClipSampler``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import videoattn_core as vac
from reference import REFERENCE_DIR
from videoattn_core.clips.preprocessing import crop_offsets, preprocess, resized_size
from videoattn_core.clips.sampling import clip_indices

CASES = torch.load(REFERENCE_DIR / "preprocess" / "cases.pt", weights_only=True)
HF_CASES = torch.load(REFERENCE_DIR / "preprocess" / "hf_cases.pt", weights_only=True)


def _frames(height: int, width: int, t: int = 2, seed: int = 0) -> np.ndarray:
    """Smooth random frames with fine detail: what shrinking with or without antialiasing tells apart."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (t, height // 16 + 1, width // 16 + 1, 3))
    smooth = np.kron(coarse, np.ones((1, 16, 16, 1)))[:, :height, :width]
    return np.clip(smooth + rng.integers(-40, 41, (t, height, width, 3)), 0, 255).astype(np.uint8)


REAL_SIZES = [(1080, 1920), (720, 1280), (480, 640), (1280, 720), (240, 320)]


# ------------------------------------------------------------------------------------------------ torchvision


@pytest.mark.parametrize("case", sorted(CASES))
def test_torchvision_recipe_equals_torchvision_outputs(case):
    c = CASES[case]
    ours = preprocess(c["frames"], resize=c["resize"], crop=c["crop"], mean=c["mean"].tolist(), std=c["std"].tolist())
    assert ours.shape == c["expected"].shape
    assert torch.allclose(ours, c["expected"], atol=1e-5, rtol=0)


def test_torchvision_recipe_does_not_antialias_on_downscales():
    """What the fixture proves in numbers: antialiasing (the old behaviour) moves pixels by many uint8 steps."""
    c = CASES["case0"]  # 1280×720 to a short side of 256
    antialiased = preprocess(c["frames"], resize=c["resize"], crop=c["crop"], mean=c["mean"].tolist(),
                             std=c["std"].tolist(), resampling="huggingface")
    step = 1 / 255 / float(c["std"].min())
    assert float((antialiased - c["expected"]).abs().max()) > 5 * step


# ------------------------------------------------------------------------------------------------ Hugging Face


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_huggingface_recipe_equals_the_image_processor(case):
    c = HF_CASES[case]
    frames = CASES[c["frames_from"].split()[-1]]["frames"]
    ours = preprocess(frames, resize=c["shortest_edge"], crop=c["crop"], mean=c["mean"].tolist(),
                      std=c["std"].tolist(), resampling="huggingface", rescale=c["rescale"])
    assert torch.allclose(ours, c["expected"], atol=1e-5, rtol=0)
    torchvision_like = preprocess(frames, resize=c["shortest_edge"], crop=c["crop"], mean=c["mean"].tolist(),
                                  std=c["std"].tolist())
    assert float((torchvision_like - c["expected"]).abs().max()) > 0.05  # the two families really differ


# ------------------------------------------------------------------------------------------------ PySlowFast


def _slowfast_transform(frames: np.ndarray, scale: int, crop: int, spatial_idx: int, mean, std) -> torch.Tensor:
    """PySlowFast's test path: utils.tensor_normalize, permute to (T, C, H, W), transform.
    random_short_side_scale_jitter(min_size = max_size = scale), transform.uniform_crop(crop, spatial_idx)."""
    x = torch.from_numpy(frames).float() / 255.0
    x = (x - torch.tensor(mean)) / torch.tensor(std)
    x = x.permute(0, 3, 1, 2)
    height, width = x.shape[2], x.shape[3]
    size = int(round(np.random.uniform(scale, scale)))
    if not ((width <= height and width == size) or (height <= width and height == size)):
        new_width, new_height = size, size
        if width < height:
            new_height = int(math.floor((float(height) / width) * size))
        else:
            new_width = int(math.floor((float(width) / height) * size))
        x = torch.nn.functional.interpolate(x, size=(new_height, new_width), mode="bilinear", align_corners=False)
    height, width = x.shape[2], x.shape[3]
    y_offset = int(math.ceil((height - crop) / 2))
    x_offset = int(math.ceil((width - crop) / 2))
    if height > width:
        if spatial_idx == 0:
            y_offset = 0
        elif spatial_idx == 2:
            y_offset = height - crop
    else:
        if spatial_idx == 0:
            x_offset = 0
        elif spatial_idx == 2:
            x_offset = width - crop
    x = x[:, :, y_offset:y_offset + crop, x_offset:x_offset + crop]
    return x.permute(1, 0, 2, 3)


@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("spatial_idx,position", [(1, "centre"), (0, "first"), (2, "last")])
def test_pyslowfast_recipe_equals_its_test_transform(size, spatial_idx, position):
    frames = _frames(*size)
    mean, std = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
    ours = preprocess(frames, resize=256, crop=224, mean=mean, std=std, resampling="pyslowfast", position=position)
    reference = _slowfast_transform(frames, 256, 224, spatial_idx, mean, std)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------ MMAction2


def _mmaction_transform(frames: np.ndarray, short: int, crop: int, crop_index: int, mean, std) -> torch.Tensor:
    """MMAction2's Resize(scale=(-1, short)) (mmcv.rescale_size + imresize, cv2 bilinear), ThreeCrop (crop_index 0
    upper-left, 1 lower-right, 2 centre) or CenterCrop, Normalize with mean/std on 0..255 pixels (float32)."""
    h, w = frames.shape[1:3]
    scale_factor = min(np.inf / max(h, w), short / min(h, w))
    new_w, new_h = int(w * float(scale_factor) + 0.5), int(h * float(scale_factor) + 0.5)
    resized = [cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_LINEAR) for f in frames]
    w_step, h_step = (new_w - crop) // 2, (new_h - crop) // 2
    x_off, y_off = [(0, 0), (2 * w_step, 2 * h_step), (w_step, h_step)][crop_index]
    cropped = np.stack([f[y_off:y_off + crop, x_off:x_off + crop] for f in resized]).astype(np.float32)
    mean255, std255 = np.array(mean, np.float32) * 255, np.array(std, np.float32) * 255
    normalised = (cropped - mean255) / std255
    return torch.from_numpy(normalised).permute(3, 0, 1, 2)


@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("crop_index,position", [(2, "centre"), (0, "first"), (1, "last")])
def test_mmaction_recipe_equals_its_test_pipeline(size, crop_index, position):
    frames = _frames(*size, seed=3)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ours = preprocess(frames, resize=224, crop=224, mean=mean, std=std, resampling="mmaction", position=position)
    reference = _mmaction_transform(frames, 224, 224, crop_index, mean, std)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=0)


def test_geometry_helpers_follow_each_source():
    assert resized_size(1080, 1920, 256) == (256, 455)  # int(455.1)
    assert resized_size(1080, 1920, 224, "mmaction") == (224, 398)  # int(398.2 + 0.5)
    assert resized_size(1000, 1999, 224, "mmaction") == (224, 448)  # 447.8 + 0.5 rounds up
    assert crop_offsets(257, 250, 224) == (16, 13)  # torchvision: round(16.5) = 16 (half to even)
    assert crop_offsets(257, 250, 224, "pyslowfast") == (17, 13)  # ceil(16.5)
    assert crop_offsets(257, 250, 224, "huggingface") == (16, 13)  # floor


# ------------------------------------------------------------------------------------------------ temporal


def _slowfast_get_start_end_idx(video_size, clip_size, clip_idx, num_clips, use_offset):
    delta = max(video_size - clip_size, 0)
    if use_offset:
        if num_clips == 1:
            start_idx = math.floor(delta / 2)
        else:
            start_idx = clip_idx * math.floor(delta / (num_clips - 1))
    else:
        start_idx = delta * clip_idx / num_clips
    return start_idx, start_idx + clip_size - 1


def _slowfast_indices(total, num_frames, rate, fps, clip_idx, num_clips, use_offset, target_fps=30):
    clip_size = rate * num_frames / target_fps * fps
    start, end = _slowfast_get_start_end_idx(total, clip_size, clip_idx, num_clips, use_offset)
    index = torch.linspace(start, end, num_frames)
    return torch.clamp(index, 0, total - 1).long().tolist()


@pytest.mark.parametrize("total,fps", [(300, 30.0), (250, 25.0), (1800, 29.97), (40, 30.0)])
@pytest.mark.parametrize("clips", [1, 2, 5])
def test_slowfast_and_timesformer_clips_follow_get_start_end_idx(total, fps, clips):
    for c in range(clips):
        assert clip_indices(total, 16, 4, fps=fps, rule="slowfast", clip=c, clips=clips) == \
            _slowfast_indices(total, 16, 4, fps, c, clips, use_offset=True)
        assert clip_indices(total, 8, 32, fps=fps, rule="timesformer", clip=c, clips=clips) == \
            _slowfast_indices(total, 8, 32, fps, c, clips, use_offset=False)


def _mmaction_indices(total, clip_len, interval, num_clips):
    ori_clip_len = clip_len * interval
    avg_interval = (total - ori_clip_len + 1) / float(num_clips)
    if total > ori_clip_len - 1:
        base_offsets = np.arange(num_clips) * avg_interval
        clip_offsets = (base_offsets + avg_interval / 2.0).astype(int)
    else:
        clip_offsets = np.zeros((num_clips,), dtype=int)
    frame_inds = clip_offsets[:, None] + np.arange(clip_len)[None, :] * interval
    return np.mod(frame_inds, total).tolist()  # out_of_bound_opt="loop"


@pytest.mark.parametrize("total", [300, 64, 50, 1000])
@pytest.mark.parametrize("clips", [1, 4])
def test_mmaction_clips_follow_sample_frames(total, clips):
    expected = _mmaction_indices(total, 32, 2, clips)
    assert [clip_indices(total, 32, 2, rule="mmaction", clip=c, clips=clips) for c in range(clips)] == expected


def _torchvision_indices(total, fps, frame_rate, clip_len, num_clips):
    step = float(fps) / frame_rate
    if step.is_integer():
        idxs = list(range(total))[::int(step)]
    else:
        idxs = (torch.arange(int(math.floor(total / step)), dtype=torch.float32) * step).floor().to(torch.int64).tolist()
    idxs = torch.tensor(idxs)
    clips = idxs.unfold(0, clip_len, 1)  # VideoClips: every run of clip_len consecutive resampled frames
    starts = torch.linspace(0, len(clips) - 1, steps=num_clips).floor().to(torch.int64)  # UniformClipSampler
    return [clips[s].tolist() for s in starts]


@pytest.mark.parametrize("total,fps", [(300, 30.0), (250, 25.0), (600, 29.97)])
def test_torchvision_clips_follow_videoclips_and_uniform_clip_sampler(total, fps):
    expected = _torchvision_indices(total, fps, 7.5, 16, 5)
    assert [clip_indices(total, 16, 4, fps=fps, rule="torchvision", clip=c, clips=5) for c in range(5)] == expected


def test_uniform_sampling_has_one_temporal_view():
    assert clip_indices(100, 8) == [6, 18, 31, 43, 56, 68, 80, 93]
    with pytest.raises(vac.ConfigError, match="has one temporal view"):
        clip_indices(100, 8, clips=2)


# ------------------------------------------------------------------------------------------------ whole recipes


ASSETS = Path(__file__).resolve().parent.parent / "assets"


def test_views_are_clips_times_crops_with_each_sources_positions():
    entry = vac.get_entry("swin3d_t.official_k400")
    loaded = vac.load_clip(ASSETS / "rotating_bar.mp4", "swin3d_t", recipe=entry.recipe, views=(4, 3))
    assert loaded.tensor.shape == (12, 3, 32, 224, 224) and loaded.clip.clips == 4
    total = loaded.clip.info.num_frames
    assert [list(loaded.clip.indices[c * 32:(c + 1) * 32]) for c in range(4)] == _mmaction_indices(total, 32, 2, 4)
    frames = loaded.clip.view_frames(1)
    for k, crop_index in enumerate((0, 2, 1)):  # first, centre, last = ThreeCrop's 0, 2, 1
        reference = _mmaction_transform(frames, 224, 224, crop_index, entry.recipe.mean, entry.recipe.std)
        assert torch.allclose(loaded.tensor[3 + k], reference, atol=1e-4)
