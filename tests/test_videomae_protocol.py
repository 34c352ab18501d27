"""VideoMAE's multi-view test protocol against a transcription of its own test loader (MCG-NJU/VideoMAE).

The references are the official code, step by step in its own order of operations, never our reading of it:
- ``kinetics.py`` ``VideoClsDataset`` in test mode: ``loadvideo_decord`` (every ``frame_sample_rate``-th frame,
  the last repeated up to ``clip_len``) and ``__getitem__`` (``temporal_step``/``temporal_start`` of chunk
  ``chunk_nb``, ``spatial_step``/``spatial_start`` of crop ``split_nb``);
- ``ssv2.py`` ``SSVideoClsDataset`` in test mode: ``tick`` segments, the sorted union of their starts and middles,
  ``buffer[chunk_nb::2]``;
- ``video_transforms.Resize`` → ``functional.resize_clip`` (``get_resize_sizes``, ``cv2.INTER_LINEAR``),
  ``volume_transforms.ClipToTensor`` and ``video_transforms.Normalize``;
- the published settings of ``scripts/{kinetics,ssv2}/*/finetune.sh``: ``--num_frames 16 --sampling_rate 4``
  (Kinetics), ``--test_num_segment 5`` (Kinetics) or ``2`` (SSv2), ``--test_num_crop 3``, ``--short_side_size 224
  --input_size 224``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import videoattn_core as vac
from videoattn_core.clips.preprocessing import crop_offsets, preprocess
from videoattn_core.clips.sampling import parse_views
from videoattn_core.run.runtime import plan_run
from videoattn_core.clips.sampling import clip_indices

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------------ transcriptions


def _kinetics_test_indices(num_frames_in_video, clip_len, frame_sample_rate, test_num_segment, chunk_nb):
    """kinetics.py: loadvideo_decord (test) then the temporal part of __getitem__ (test)."""
    all_index = [x for x in range(0, num_frames_in_video, frame_sample_rate)]
    while len(all_index) < clip_len:
        all_index.append(all_index[-1])
    buffer = np.array(all_index)  # stands for vr.get_batch(all_index): one row per decoded frame
    temporal_step = max(1.0 * (buffer.shape[0] - clip_len) / (test_num_segment - 1), 0)
    temporal_start = int(chunk_nb * temporal_step)
    return buffer[temporal_start:temporal_start + clip_len].tolist()


def _ssv2_test_indices(num_frames_in_video, num_segment, test_num_segment, chunk_nb):
    """ssv2.py: loadvideo_decord (test) then the temporal part of __getitem__ (test); clip_len is 1."""
    tick = num_frames_in_video / float(num_segment)
    all_index = list(np.array([int(tick / 2.0 + tick * x) for x in range(num_segment)] +
                              [int(tick * x) for x in range(num_segment)]))
    while len(all_index) < (num_segment * test_num_segment):
        all_index.append(all_index[-1])
    all_index = list(np.sort(np.array(all_index)))
    buffer = np.array(all_index)
    temporal_start = chunk_nb  # 0/1
    return buffer[temporal_start::2].tolist()


def _videomae_spatial(frames, short_side_size, test_num_crop, split_nb):
    """resize_clip(size=short_side_size, 'bilinear') on the uint8 frames, the spatial part of __getitem__ (test),
    ClipToTensor (float64 → float32, / 255) and Normalize: (3, T, size, size)."""
    im_h, im_w, _ = frames[0].shape
    clip = list(frames)
    if not ((im_w <= im_h and im_w == short_side_size) or (im_h <= im_w and im_h == short_side_size)):
        if im_w < im_h:  # get_resize_sizes
            ow, oh = short_side_size, int(short_side_size * im_h / im_w)
        else:
            oh, ow = short_side_size, int(short_side_size * im_w / im_h)
        clip = [cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR) for img in clip]
    buffer = np.stack(clip, 0)
    spatial_step = 1.0 * (max(buffer.shape[1], buffer.shape[2]) - short_side_size) / (test_num_crop - 1)
    spatial_start = int(split_nb * spatial_step)
    if buffer.shape[1] >= buffer.shape[2]:
        buffer = buffer[:, spatial_start:spatial_start + short_side_size, :, :]
    else:
        buffer = buffer[:, :, spatial_start:spatial_start + short_side_size, :]
    np_clip = np.zeros([3, len(buffer), buffer.shape[1], buffer.shape[2]])
    for img_idx, img in enumerate(buffer):
        np_clip[:, img_idx, :, :] = img.transpose(2, 0, 1)
    tensor = torch.from_numpy(np_clip).float()
    tensor = torch.div(tensor, 255)
    mean, std = torch.as_tensor(MEAN), torch.as_tensor(STD)
    return tensor.sub_(mean[:, None, None, None]).div_(std[:, None, None, None])


def _frames(height: int, width: int, t: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (t, height // 16 + 1, width // 16 + 1, 3))
    smooth = np.kron(coarse, np.ones((1, 16, 16, 1)))[:, :height, :width]
    return np.clip(smooth + rng.integers(-40, 41, (t, height, width, 3)), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ temporal


@pytest.mark.parametrize("total", [300, 250, 64, 65, 70, 30, 10, 1])
@pytest.mark.parametrize("clips", [2, 3, 5, 10])
def test_kinetics_clips_follow_the_test_loader(total, clips):
    expected = [_kinetics_test_indices(total, 16, 4, clips, c) for c in range(clips)]
    assert [clip_indices(total, 16, 4, rule="videomae", clip=c, clips=clips) for c in range(clips)] == expected


def test_kinetics_single_view_is_the_middle_view_of_the_odd_protocols():
    """The source has no single-view test (test_num_segment=1 divides by zero); one view is the centred window,
    which is the middle chunk of the 3- and 5-clip tests."""
    with pytest.raises(ZeroDivisionError):
        _kinetics_test_indices(300, 16, 4, 1, 0)
    for total in (300, 250, 71, 64, 10):
        single = clip_indices(total, 16, 4, rule="videomae")
        assert single == _kinetics_test_indices(total, 16, 4, 5, 2) == _kinetics_test_indices(total, 16, 4, 3, 1)
    assert clip_indices(300, 16, 4, rule="videomae") == list(range(116, 180, 4))


def test_kinetics_rule_reads_raw_frames_whatever_the_frame_rate():
    """VideoMAE decodes every 4th frame of the file with no frame-rate adjustment (unlike PySlowFast's rule)."""
    for fps in (25.0, 30.0, 59.94):
        assert clip_indices(600, 16, 4, fps=fps, rule="videomae", clip=4, clips=5) == \
            _kinetics_test_indices(600, 16, 4, 5, 4)
    assert clip_indices(600, 16, 4, fps=59.94, rule="slowfast") != clip_indices(600, 16, 4, fps=59.94, rule="videomae")


@pytest.mark.parametrize("total", [16, 17, 30, 48, 100, 301, 7, 1])
@pytest.mark.parametrize("clips", [1, 2])
def test_ssv2_views_follow_the_test_loader(total, clips):
    expected = [_ssv2_test_indices(total, 16, clips, c) for c in range(clips)]
    assert [clip_indices(total, 16, rule="videomae", clip=c, clips=clips) for c in range(clips)] == expected


def test_ssv2_rule_has_two_views_and_differs_from_the_middle_frame_rule():
    with pytest.raises(vac.ConfigError, match="has 2 temporal views"):
        clip_indices(100, 16, rule="videomae", clips=3)
    # the generic uniform rule (PySlowFast, Video Swin) reads other frames than either VideoMAE view
    generic = clip_indices(100, 16)
    assert generic not in (clip_indices(100, 16, rule="videomae", clip=c, clips=2) for c in range(2))
    with pytest.raises(vac.ConfigError, match="clip_rule='videomea' is not allowed"):
        clip_indices(100, 16, rule="videomea")


# ------------------------------------------------------------------------------------------------ spatial


REAL_SIZES = [(1080, 1920), (720, 1280), (240, 320), (1280, 720), (224, 398), (1000, 1999), (360, 360)]


@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("split_nb,position", [(0, "first"), (1, "centre"), (2, "last")])
def test_videomae_resampling_equals_its_test_transform(size, split_nb, position):
    frames = _frames(*size, seed=5)
    ours = preprocess(frames, resize=224, crop=224, mean=MEAN, std=STD, resampling="videomae", position=position)
    reference = _videomae_spatial(frames, 224, 3, split_nb)
    assert ours.shape == reference.shape == (3, 2, 224, 224)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=0)


def test_videomae_geometry_differs_from_mmaction_where_the_sources_differ():
    # the long side: VideoMAE truncates 1999·224/1000 = 447.8, mmcv rounds it to 448
    frames = _frames(1000, 1999, seed=6)
    videomae = preprocess(frames, resize=224, crop=224, mean=MEAN, std=STD, resampling="videomae", position="last")
    assert torch.allclose(videomae, _videomae_spatial(frames, 224, 3, 2), atol=1e-5, rtol=0)
    mmaction = preprocess(frames, resize=224, crop=224, mean=MEAN, std=STD, resampling="mmaction", position="last")
    assert float((mmaction - videomae).abs().max()) > 0.5
    # the last crop: VideoMAE at long − crop, ThreeCrop at 2·((long − crop) // 2)
    assert crop_offsets(224, 399, 224, "videomae", "last") == (0, 175)
    assert crop_offsets(224, 399, 224, "mmaction", "last") == (0, 174)
    assert crop_offsets(399, 224, 224, "videomae", "centre") == (87, 0)


# ------------------------------------------------------------------------------------------------ whole recipes


def test_catalog_recipes_name_the_videomae_rules():
    entries = [e for e in vac.list_weights() if e.preset.startswith("videomae")]
    assert entries
    for entry in entries:
        assert entry.recipe.clip_rule == "videomae"
        assert entry.recipe.resampling == ("huggingface" if entry.source == "huggingface" else "videomae")


def test_protocol_views_of_the_ssv2_recipe_are_allowed_and_bounded():
    ssv2 = vac.get_entry("videomae_base.official_ssv2").recipe
    assert parse_views("protocol", ssv2) == (2, 3)
    assert parse_views("1x3", ssv2) == (1, 3)
    with pytest.raises(vac.ConfigError, match="has 2 temporal views"):
        parse_views("3x3", ssv2)
    swin_ssv2 = next(e.recipe for e in vac.list_weights() if e.preset.startswith("swin3d") and e.dataset == "ssv2")
    with pytest.raises(vac.ConfigError, match="has one temporal view"):
        parse_views("2x3", swin_ssv2)


def test_ssv2_plan_reads_the_frames_of_both_views():
    clip = ASSETS / "rotating_bar.mp4"
    plan = plan_run("videomae_base", clip, weights="videomae_base.official_ssv2", device="cpu", views="protocol",
                    estimate=False)
    total = plan.clip.num_frames
    assert plan.views == (2, 3)
    assert plan.frame_indices == [_ssv2_test_indices(total, 16, 2, c) for c in range(2)]


def test_kinetics_protocol_views_are_the_test_loaders_clips_and_crops():
    entry = vac.get_entry("videomae_base.official_k400")
    loaded = vac.load_clip(ASSETS / "rotating_bar.mp4", "videomae_base", recipe=entry.recipe, views=(5, 3))
    assert loaded.tensor.shape == (15, 3, 16, 224, 224)
    total = loaded.clip.info.num_frames
    indices = list(loaded.clip.indices)
    assert [indices[c * 16:(c + 1) * 16] for c in range(5)] == [_kinetics_test_indices(total, 16, 4, 5, c)
                                                                for c in range(5)]
    frames = loaded.clip.view_frames(3)
    for split_nb in range(3):  # clip-major: view 3·chunk + split
        reference = _videomae_spatial(frames, 224, 3, split_nb)
        assert torch.allclose(loaded.tensor[3 * 3 + split_nb], reference, atol=1e-5)
