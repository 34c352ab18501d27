"""Clips: sampling indices, decoding the right frames (with and without seeking), odd but valid inputs, every bad
input with its message, and model inputs made with each preset's recipe. Preprocessing against the published
transforms is in test_preprocessing.py."""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
import videoattn_core as vac
from clips import index_frame, read_index, write_audio, write_video
from videoattn_core.clips.preprocessing import preprocess
from videoattn_core.run.runtime import load_clip
from videoattn_core.clips.sampling import sample_indices
from videoattn_core.clips.decode import Limits, read_clip

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "k300": write_video(d / "k300.mp4", 300),  # 10 s at 30 fps, frames carry their index
        "long": write_video(d / "long.mp4", 1800, gop=30, options={"preset": "ultrafast"}),  # 60 s
        "short": write_video(d / "short.mp4", 10),
        "one": write_video(d / "one.mp4", 1),
        "webm": write_video(d / "clip.webm", 40, codec="libvpx-vp9", options={"deadline": "realtime",
                                                                              "cpu-used": "8"}),
        "gif": write_video(d / "clip.gif", 24, codec="gif", pix_fmt="rgb8", fps=10),
        "faststart": write_video(d / "faststart.mp4", 90, container_options={"movflags": "+faststart"}),
        "wav": write_audio(d / "tone.wav"),
    }


def _indices(clip) -> list[int]:
    return [read_index(frame) for frame in clip.frames]


# ------------------------------------------------------------------------------------------------ sampling


def test_window_sampling_is_pyslowfast_centred_clip():
    # 8 × 32 frames at 30 fps in a 300-frame clip: window 256, delta 44, start 22, linspace(22, 277, 8) truncated
    assert sample_indices(300, 8, 32, fps=30) == [22, 58, 94, 131, 167, 204, 240, 277]
    # the same recipe on 25 fps video spans 256 × 25 / 30 = 213.3 frames: start floor(86.67 / 2) = 43
    assert sample_indices(300, 8, 32, fps=25) == [43, 73, 103, 134, 164, 194, 225, 255]
    # unknown fps: taken as 30
    assert sample_indices(300, 8, 32) == sample_indices(300, 8, 32, fps=30)
    # MViT's 16 × 4 on a 10 s Kinetics clip at 30 fps: window 64 from 118 to 181, a step of 63 / 15 = 4.2
    assert sample_indices(300, 16, 4, fps=30) == [118, 122, 126, 130, 134, 139, 143, 147, 151, 155, 160, 164,
                                                  168, 172, 176, 181]


def test_window_longer_than_clip_is_clamped_to_last_frame():
    assert sample_indices(50, 8, 32, fps=30) == [0, 36, 49, 49, 49, 49, 49, 49]


def test_uniform_sampling_takes_segment_middles():
    # seg = 99 / 8 = 12.375; middles of [0,12], [12,25], [25,37], [37,50], [50,62], [62,74], [74,87], [87,99]
    assert sample_indices(100, 8) == [6, 18, 31, 43, 56, 68, 80, 93]
    assert sample_indices(3, 4) == [0, 0, 1, 2]
    assert sample_indices(1, 8) == [0] * 8


def test_sampling_arguments_are_checked():
    with pytest.raises(vac.ConfigError, match="sampling_rate"):
        sample_indices(100, 8, 0)
    with pytest.raises(vac.ConfigError, match="num_frames"):
        sample_indices(100, 0, 4)
    with pytest.raises(vac.ConfigError, match="sampling"):
        read_clip(ASSETS / "flash.mp4", 8, sampling="random")


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("rate", [4, None])
@pytest.mark.parametrize("seek", [True, False])
def test_decoded_frames_are_the_sampled_ones(videos, rate, seek):
    clip = read_clip(videos["k300"], 8, rate, seek=seek)
    assert clip.frames.shape == (8, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert list(clip.indices) == sample_indices(300, 8, rate, fps=30)
    assert _indices(clip) == list(clip.indices) == list(clip.frame_indices)
    assert clip.sampling == ("window" if rate else "uniform") and not clip.padded


def test_long_clip_is_read_by_seeking_not_decoding_everything(videos):
    seeking = read_clip(videos["long"], 16, 4)
    linear = read_clip(videos["long"], 16, 4, seek=False)
    assert _indices(seeking) == _indices(linear) == sample_indices(1800, 16, 4, fps=30)
    assert seeking.seeks >= 1 and linear.seeks == 0
    assert seeking.frames_decoded <= 2 * 30 + 64  # at most a GOP before the window, plus the window
    assert linear.frames_decoded >= sample_indices(1800, 16, 4)[-1]
    uniform = read_clip(videos["long"], 16)
    assert _indices(uniform) == sample_indices(1800, 16)
    assert uniform.frames_decoded < 1800 // 2


def test_metadata_of_a_sample_clip():
    clip = read_clip(ASSETS / "moving_square.mp4", 8, 8)
    info = clip.info
    assert (info.width, info.height, info.codec, info.fps, info.num_frames) == (320, 240, "h264", 25.0, 250)
    assert info.duration == pytest.approx(10.0) and info.frame_count_from == "container index"
    assert not info.has_audio and info.file_bytes == (ASSETS / "moving_square.mp4").stat().st_size


@pytest.mark.parametrize("name", ["moving_square.mp4", "rotating_bar.mp4", "flash.mp4"])
def test_sample_clips_are_small_and_show_motion(name):
    path = ASSETS / name
    assert path.stat().st_size < 1_000_000
    clip = read_clip(path, 16)
    frames = clip.frames.astype(np.float32)
    if name == "moving_square.mp4":
        red = (frames[..., 0] > 180) & (frames[..., 1] < 90)
        xs = [np.nonzero(mask)[1].mean() for mask in red]
        assert all(b > a for a, b in zip(xs, xs[1:]))  # the square moves right in every sampled frame
    elif name == "flash.mp4":
        full = read_clip(path, 250)  # every frame
        brightness = full.frames.mean(axis=(1, 2, 3))
        assert brightness[120:130].min() > 3 * brightness[:120].max()
    else:
        assert np.abs(np.diff(frames, axis=0)).mean() > 1.0


def test_big_buck_bunny_sample_decodes_at_its_size_rate_and_length():
    """The real sample (assets/README.md): 132 frames of 640×360 at the source's 25 fps, a keyframe a second."""
    path = ASSETS / "big_buck_bunny.mp4"
    assert path.stat().st_size < 1_000_000
    clip = read_clip(path, 8, 8)
    info = clip.info
    assert (info.width, info.height, info.codec, info.fps, info.num_frames) == (640, 360, "h264", 25.0, 132)
    assert info.duration == pytest.approx(5.28) and not info.has_audio
    assert clip.frames.shape == (8, 360, 640, 3) and not clip.padded
    with av.open(str(path)) as container:
        decoded = [(frame.key_frame, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
    assert len(decoded) == 132 and [i for i, (key, _) in enumerate(decoded) if key] == list(range(0, 132, 25))
    frames = np.stack([img for _, img in decoded]).astype(np.float32)
    assert np.abs(np.diff(frames, axis=0)).mean() > 1.0  # a moving scene, not a still


def test_short_clip_is_padded_and_says_so(videos):
    clip = read_clip(videos["short"], 8, 4)
    assert clip.frames.shape[0] == 8 and clip.padded and clip.padded_frames == 8 - len(set(clip.frame_indices))
    assert _indices(clip) == sample_indices(10, 8, 4, fps=30)
    assert any("fewer than" in note and "repeat" in note for note in clip.notes)


def test_single_frame_video_and_still_image(videos, tmp_path):
    clip = read_clip(videos["one"], 8, 4)
    assert clip.frames.shape == (8, 48, 64, 3) and _indices(clip) == [0] * 8 and clip.padded_frames == 7
    png = tmp_path / "still.png"
    Image.fromarray(index_frame(5)).save(png)
    still = read_clip(png, 4)
    assert still.frames.shape == (4, 48, 64, 3) and _indices(still) == [5] * 4


def test_webm_vp9_and_gif(videos):
    webm = read_clip(videos["webm"], 8)
    assert webm.info.codec == "vp9" and _indices(webm) == sample_indices(40, 8)
    gif = read_clip(videos["gif"], 6)
    assert gif.info.codec == "gif" and _indices(gif) == sample_indices(24, 6)


def test_bytes_input_matches_path_input(videos):
    data = videos["k300"].read_bytes()
    from_bytes = read_clip(data, 8, 4)
    assert from_bytes.info.source == "the uploaded clip"
    assert np.array_equal(from_bytes.frames, read_clip(videos["k300"], 8, 4).frames)


def test_large_frames_are_downscaled_while_decoding(tmp_path):
    path = write_video(tmp_path / "wide.mp4", 3, width=1280, height=720)
    clip = read_clip(path, 2, limits=Limits(decode_max_side=320))
    assert clip.frames.shape == (2, 180, 320, 3) and clip.downscaled
    assert _indices(clip) == sample_indices(3, 2)
    assert any("scaled to 320×180" in note for note in clip.notes)
    assert read_clip(path, 2).frames.shape == (2, 720, 1280, 3)  # under the default limit: untouched


# ------------------------------------------------------------------------------------------------ bad input


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(vac.VideoError, match="does not exist"):
        read_clip(tmp_path / "nope.mp4", 8)
    with pytest.raises(vac.VideoError, match="is not a file"):
        read_clip(tmp_path, 8)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(vac.VideoError, match=r"is empty \(0 bytes\).*MP4"):
        read_clip(tmp_path / "empty.mp4", 8)
    with pytest.raises(vac.VideoError, match="is empty"):
        read_clip(b"", 8)


def test_non_video_file(tmp_path):
    (tmp_path / "notes.txt").write_text("this is not a video\n" * 20)
    with pytest.raises(vac.VideoError, match=r"not a video FFmpeg can read \(Invalid data.*expected MP4/MOV"):
        read_clip(tmp_path / "notes.txt", 8)


def test_corrupt_file(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "noise.mp4").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(vac.VideoError, match="not a video FFmpeg can read"):
        read_clip(tmp_path / "noise.mp4", 8)


def test_truncated_files(videos, tmp_path):
    data = videos["k300"].read_bytes()  # index (moov) at the end: truncation loses it
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(vac.VideoError, match="not a video FFmpeg can read"):
        read_clip(tmp_path / "cut.mp4", 8, 4)
    data = videos["faststart"].read_bytes()  # index first: the frames it announces are missing
    for fraction in (0.5, 0.9):
        (tmp_path / "cut_fs.mp4").write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(vac.VideoError, match="truncated"):
            read_clip(tmp_path / "cut_fs.mp4", 8)


def _damaged(data: bytes, rng: random.Random) -> bytes:
    """``data`` cut short, with bytes overwritten, zeroed or a stretch copied in elsewhere."""
    b = bytearray(data)
    kind = rng.choice(["trunc", "flip", "zero", "dup"])
    if kind == "trunc":
        b = b[:rng.randrange(len(b))]
    elif kind == "flip":
        for _ in range(rng.randint(1, 50)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "zero":
        i = rng.randrange(len(b))
        b[i:i + rng.randint(1, 4000)] = bytes(min(len(b) - i, 4000))
    else:
        i, j = rng.randrange(len(b)), rng.randrange(len(b))
        b[i:i] = b[j:j + 3000]
    return bytes(b)


@pytest.mark.parametrize("clip, seed", [("moving_square", 1), ("moving_square", 5), ("flash", 1), ("rotating_bar", 1)])
def test_damaged_uploads_decode_or_end_in_a_video_error(clip, seed):
    """Forty damaged copies of a sample clip: each decodes or raises a VideoError, never another exception (the
    app shows that error's message; anything else would be a traceback)."""
    data = (ASSETS / f"{clip}.mp4").read_bytes()
    rng = random.Random(seed)
    errors = []
    for _ in range(40):
        try:
            read_clip(_damaged(data, rng), 8, 4)
        except vac.VideoError as exc:
            errors.append(str(exc))
    assert errors  # the damage was real
    if clip == "moving_square":  # among them, a header whose video stream names no codec (it was an AttributeError)
        assert any("names no codec" in e for e in errors)


def test_audio_only_file(videos):
    with pytest.raises(vac.VideoError, match=r"has no video stream: it is audio only \(pcm_s16le\)"):
        read_clip(videos["wav"], 8)


def test_limits_are_enforced_with_their_values(videos):
    size = videos["k300"].stat().st_size / 1024
    with pytest.raises(vac.VideoError, match=rf"is {size:.1f} KiB, over the limit of 1000 bytes"):
        read_clip(videos["k300"], 8, limits=Limits(max_file_bytes=1000))
    with pytest.raises(vac.VideoError, match=r"frames of 64×48 px, over the limit of 32 px a side"):
        read_clip(videos["k300"], 8, limits=Limits(max_side=32))
    with pytest.raises(vac.VideoError, match=r"decoding took longer than the limit of 0 s"):
        read_clip(videos["long"], 8, 4, limits=Limits(max_decode_seconds=0))


# ------------------------------------------------------------------------------------------------ preprocessing


def test_preprocess_accepts_tensors_and_rejects_bad_frames():
    frames = np.random.default_rng(1).integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    a = preprocess(frames, resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    b = preprocess(torch.from_numpy(frames), resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert torch.equal(a, b)
    with pytest.raises(vac.VideoError, match=r"uint8 of shape \(T, H, W, 3\); got float32 of shape \(2, 40, 60, 3\)"):
        preprocess(frames.astype(np.float32), resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(vac.VideoError, match=r"got uint8 of shape \(40, 60, 3\)"):
        preprocess(frames[0], resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_crop_larger_than_frame_is_zero_padded_like_torchvision():
    frames = np.full((1, 10, 10, 3), 255, np.uint8)
    out = preprocess(frames, resize=10, crop=14, mean=(0, 0, 0), std=(1, 1, 1))
    assert out.shape == (3, 1, 14, 14)
    assert float(out[:, :, 2:12, 2:12].min()) == 1.0 and float(out[:, :, :2].max()) == 0.0


# ------------------------------------------------------------------------------------------------ presets


def test_load_clip_uses_each_presets_recipe():
    base = load_clip(ASSETS / "rotating_bar.mp4", "timesformer_base")  # its default: the Hugging Face port
    assert base.tensor.shape == (1, 3, 8, 224, 224)
    assert (base.recipe.num_frames, base.recipe.sampling_rate, base.recipe.resize) == (8, 32, 224)
    assert base.recipe.resampling == "huggingface" and base.recipe.clip_rule == "timesformer"
    # TimeSformer's PySlowFast fork: one test clip starts at frame 0; 8 × 32 frames at 30 fps = 213⅓ at 25 fps
    assert list(base.clip.indices) == [0, 30, 60, 91, 121, 151, 182, 212]
    direct = preprocess(base.clip.frames, resize=224, crop=224, mean=(0.45,) * 3, std=(0.225,) * 3,
                        resampling="huggingface", rescale=None)
    assert torch.equal(base.tensor[0], direct)
    mvit = load_clip(ASSETS / "rotating_bar.mp4", "mvit_v1_b")
    assert mvit.tensor.shape == (1, 3, 16, 224, 224) and mvit.recipe.resize == 256
    assert mvit.recipe.mean == (0.45, 0.45, 0.45)
    swin = load_clip(ASSETS / "rotating_bar.mp4", "swin3d_t")
    assert swin.tensor.shape == (1, 3, 32, 224, 224) and swin.recipe.mean == (0.485, 0.456, 0.406)


def test_load_clip_adapts_to_a_models_config():
    config = vac.get_config("timesformer_base", num_frames=4, img_size=32, patch_size=8)
    loaded = load_clip(ASSETS / "flash.mp4", "timesformer_base", config=config)
    assert loaded.tensor.shape == (1, 3, 4, 32, 32) and loaded.recipe.sampling_rate == 32


def test_load_clip_refuses_unknown_and_headless_models():
    with pytest.raises(vac.ConfigError, match=r"unknown model 'no_such_model'; available: .*timesformer_base"):
        load_clip(ASSETS / "flash.mp4", "no_such_model")
    with pytest.raises(vac.ConfigError, match="fiery_temporal has no classification head"):
        load_clip(ASSETS / "flash.mp4", "fiery_temporal")
