"""The run pipeline end to end with catalog entries: the entry's own recipe, the exact frames it samples, the full
probability vector against an independent computation, and the same numbers from the library, the command line
and the Run page."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import videoattn_core as vac
from test_app import charts, open_app
from test_weights import _Server
from videoattn_core.weights import downloads as D
from videoattn_core.weights import lookup as W
from videoattn_core.cli.main import main
from videoattn_core.cost.memory import MEMORY_MARGIN

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "assets" / "moving_square.mp4"  # 250 frames of 320×240 at 25 fps
TINY = dict(embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32, patch_size=8, num_classes=174)
ENTRY = "timesformer_base.test_ssv2"


def _tiny_state() -> dict[str, torch.Tensor]:
    """A tiny TimeSformer whose head is neither flat nor saturated, so wrong inputs show in the probabilities."""
    model = vac.runtime.build_seeded(vac.get_config("timesformer_base", **TINY), 3)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(4))
    return model.state_dict()


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save(_tiny_state(), buffer)
    return buffer.getvalue()


@pytest.fixture
def entry(checkpoint, tmp_path, monkeypatch):
    """A catalog entry like the Hugging Face SSv2 TimeSformer (uniform sampling, PIL resampling), for the tiny
    model, served from 127.0.0.1 and downloaded into a fresh torch hub cache by the pipeline itself."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    base = W.CATALOG["timesformer_base.hf_ssv2"]
    with _Server() as server:
        server.routes["/tiny_ssv2.pth"] = (200, checkpoint, {}, None)
        tiny = replace(base, name=ENTRY, source="official", hf_repo=None, url=f"{server.url}/tiny_ssv2.pth",
                       filename="tiny_ssv2.pth", sha256=hashlib.sha256(checkpoint).hexdigest(), size_mb=None,
                       overrides=dict(TINY))
        monkeypatch.setitem(W.CATALOG, ENTRY, tiny)
        yield tiny


def _decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _hf_processor(frame: np.ndarray, shortest_edge: int, crop: int, mean, std) -> np.ndarray:
    """The Hugging Face image processor's steps (PIL backend): resize the shortest edge (long side truncated) with
    PIL bilinear, centre crop at (size − crop) // 2, rescale by 1/255, normalise; (3, crop, crop)."""
    image = Image.fromarray(frame)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(shortest_edge * long / short)
    size = (shortest_edge, new_long) if w <= h else (new_long, shortest_edge)
    image = image.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(image).astype(np.float64) * (1 / 255)
    top, left = (array.shape[0] - crop) // 2, (array.shape[1] - crop) // 2
    array = array[top:top + crop, left:left + crop].astype(np.float32)
    array = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return array.transpose(2, 0, 1)


def test_predict_with_a_catalog_entry_reads_the_clip_with_the_entrys_recipe(entry):
    result = vac.predict("timesformer_base", CLIP, weights=ENTRY, top_k=5, device="cpu")
    assert not result.random_init and result.weights == ENTRY
    assert (Path(D.torch_hub_checkpoints()) / "tiny_ssv2.pth").is_file()  # fetched through the pipeline
    # the entry's recipe (SSv2: uniform sampling, PIL resampling), adapted to the tiny model's 4 frames × 32 px
    assert result.recipe["sampling"] == "uniform" and result.recipe["resampling"]["source"] == "huggingface"
    assert (result.recipe["num_frames"], result.recipe["resize"], result.recipe["crop"]) == (4, 32, 32)
    # PySlowFast's SSv2 test sampling on 250 frames: the middle of each of 4 segments of 249 / 4 = 62.25 frames
    assert result.clip["sampled_indices"] == [31, 93, 155, 218]
    assert result.labels_from == "assets label list (ssv2)" and len(result.probabilities) == 174

    frames = _decode_all(CLIP)
    x = np.stack([_hf_processor(frames[i], 32, 32, entry.recipe.mean, entry.recipe.std) for i in [31, 93, 155, 218]],
                 axis=1)  # (3, T, 32, 32)
    model = vac.build_model("timesformer_base", **TINY)
    model.load_state_dict(_tiny_state())
    with torch.no_grad():
        expected = model(torch.from_numpy(x)[None]).softmax(-1)[0]
    probs = torch.tensor(result.probabilities)
    assert 0.02 < float(probs.max()) < 0.9  # an unsaturated head: wrong inputs would move these numbers
    torch.testing.assert_close(probs, expected, rtol=0, atol=2e-6)
    assert [p["index"] for p in result.predictions] == torch.topk(expected, 5).indices.tolist()


def test_protocol_views_average_the_softmax_of_each_view(entry):
    one = vac.predict("timesformer_base", CLIP, weights=ENTRY, device="cpu")
    three = vac.predict("timesformer_base", CLIP, weights=ENTRY, device="cpu", views="protocol")
    assert three.views == {"clips": 1, "crops": 3, "forwards": 3}
    model = vac.build_model("timesformer_base", **TINY)
    model.load_state_dict(_tiny_state())
    frames = _decode_all(CLIP)
    views = []
    for position in ("first", "centre", "last"):  # 42×32 frames: left, centre and right 32-px crops
        x = vac.preprocess(np.stack([frames[i] for i in [31, 93, 155, 218]]), resize=32, crop=32,
                           mean=entry.recipe.mean, std=entry.recipe.std, resampling="huggingface", position=position)
        with torch.no_grad():
            views.append(model(x[None]).softmax(-1)[0])
    torch.testing.assert_close(torch.tensor(three.probabilities), torch.stack(views).mean(0), rtol=0, atol=2e-6)
    torch.testing.assert_close(torch.tensor(one.probabilities), views[1], rtol=0, atol=2e-6)


def _cli_probabilities(capsys, *argv: str) -> list[float]:
    code = main(["predict", "timesformer_base", "--clip", str(CLIP), "--json", "--device", "cpu", *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)["probabilities"]


def _run_page_topk(**params: str) -> tuple[list[str], list[float]]:
    at = open_app("run", model="timesformer_base", **{k: str(v) for k, v in TINY.items()}, topk="5", **params)
    assert not at.exception, [e.value for e in at.exception]
    bars = next(c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    return bars["data"][0]["y"][::-1], bars["data"][0]["x"][::-1]  # best first


@pytest.mark.parametrize("weights", [ENTRY, None])
def test_library_command_line_and_run_page_give_identical_probabilities(entry, capsys, weights):
    """The same clip and weights (random initialisation too: seed 0 everywhere) through the three ways in."""
    library = vac.predict("timesformer_base", CLIP, weights=weights, device="cpu", top_k=5,
                          overrides=None if weights else dict(TINY))
    cli = _cli_probabilities(capsys, *(["--weights", weights] if weights else
                                       [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]))
    assert cli == library.probabilities  # the same pipeline: bit for bit
    labels, values = _run_page_topk(clip="moving_square", **({"weights": weights} if weights else {}))
    assert labels == [p["label"] for p in library.predictions]
    assert values == [p["probability"] for p in library.predictions]


def test_dry_run_plans_without_downloading_or_running(entry, capsys):
    code = main(["predict", "timesformer_base", "--clip", str(CLIP), "--weights", ENTRY, "--dry-run", "--json",
                 "--views", "protocol", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    plan = json.loads(out.out)
    assert not (Path(D.torch_hub_checkpoints()) / "tiny_ssv2.pth").exists()  # nothing was downloaded
    assert plan["weights"]["cached"] is False and plan["weights"]["url"] == entry.url
    assert plan["weights"]["path"] == str(Path(D.torch_hub_checkpoints()) / "tiny_ssv2.pth")
    assert plan["weights"]["verification"] == "sha256"
    recipe = plan["recipe"]
    assert {"num_frames", "sampling", "sampling_rate", "resize", "crop", "mean", "std", "resampling"} <= set(recipe)
    assert recipe["resampling"] == {"source": "huggingface", "interpolation": "bilinear", "antialias": True,
                                    "detail": recipe["resampling"]["detail"]}
    assert plan["frame_indices"] == [[31, 93, 155, 218]]
    assert plan["views"] == {"clips": 1, "crops": 3, "forwards": 3}
    summary = vac.summarize(vac.get_config("timesformer_base", **TINY))
    assert plan["macs_per_view"] == summary.macs and plan["macs_total"] == 3 * summary.macs
    assert plan["memory"]["live_tensor_peak_bytes"] == summary.memory_estimate()["activations"]
    assert plan["memory"]["fits"] and plan["memory"]["margin"] == MEMORY_MARGIN
    assert plan["labels_from"].startswith("assets label list (ssv2)")


def test_dry_run_of_real_entries_names_their_sources(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    plans = {}
    for name in ("mvit_v2_s.torchvision_k400", "timesformer_base.hf_k400", "swin3d_t.official_k400"):
        preset = name.split(".")[0]
        assert main(["predict", preset, "--clip", str(CLIP), "--weights", name, "--dry-run", "--json"]) == 0
        plans[name] = json.loads(capsys.readouterr().out)
    tv = plans["mvit_v2_s.torchvision_k400"]
    assert tv["recipe"]["resampling"]["antialias"] is False and tv["recipe"]["resampling"]["source"] == "torchvision"
    assert tv["weights"]["verification"] == "sha256 prefix" and tv["weights"]["url"].endswith("mvit_v2_s-ae3be167.pth")
    # torchvision's evaluation: 16 consecutive frames at 7.5 fps (every 3⅓ frames at 25 fps), the first clip
    assert tv["frame_indices"] == [[int(i * 25 / 7.5) for i in range(16)]]
    hf = plans["timesformer_base.hf_k400"]
    assert hf["recipe"]["resampling"]["antialias"] is True and hf["weights"]["hf_repo"]
    assert hf["frame_indices"] == [[0, 30, 60, 91, 121, 151, 182, 212]]  # 8 × 32 at 30 fps from frame 0
    swin = plans["swin3d_t.official_k400"]
    assert swin["recipe"]["resampling"]["source"] == "mmaction"
    # MMAction2 SampleFrames(clip_len=32, frame_interval=2) on 250 frames: offset int((250 − 64 + 1) / 2) = 93
    assert swin["frame_indices"] == [[93 + 2 * i for i in range(32)]]


def test_timeline_and_batch(entry, tmp_path, capsys):
    result = vac.predict_timeline("timesformer_base", CLIP, stride_s=2.0, weights=ENTRY, device="cpu", top_k=3)
    windows = result["windows"]
    # SSv2's uniform recipe: windows of 2 s (50 frames) every 2 s over 250 frames → 5 windows
    assert [w["frame_indices"] for w in windows][:2] == [[6, 18, 30, 43], [56, 68, 80, 93]]
    assert len(windows) == 5 and all(len(w["predictions"]) == 3 for w in windows)
    single = vac.predict("timesformer_base", CLIP, weights=ENTRY, device="cpu")
    assert windows[0]["start_s"] == 0.0 and windows[1]["start_s"] == 2.0
    assert single.probabilities  # the whole clip and its windows read the same way, only the frames differ

    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(CLIP.read_bytes())
    (clips / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "rows.csv"
    code = main(["predict", "timesformer_base", "--clips", str(clips), "--weights", ENTRY, "--out", str(out),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "2/2" in err
    rows = out.read_text().splitlines()
    assert rows[0].startswith("clip,ok") and len(rows) == 3
    assert "True" in rows[1] and single.predictions[0]["label"] in rows[1]
    assert "False" in rows[2] and "is not a video FFmpeg can read" in rows[2]


def test_run_page_protocol_views_timeline_and_plan(entry):
    at = open_app("run", model="timesformer_base", **{k: str(v) for k, v in TINY.items()}, topk="5",
                  weights=ENTRY, views="protocol", clip=CLIP.stem)  # the clip of known length the library reads
    assert not at.exception, [e.value for e in at.exception]
    library = vac.predict("timesformer_base", CLIP, weights=ENTRY, device="cpu", views="protocol")
    bars = next(c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    assert bars["data"][0]["x"][::-1] == [p["probability"] for p in library.predictions]
    assert at.query_params["views"] == "protocol"
    plan = json.loads(at.get("json")[0].proto.body)
    assert plan["frame_indices"] == [[31, 93, 155, 218]] and plan["views"]["forwards"] == 3
    assert plan["weights"]["name"] == ENTRY and plan["memory"]["fits"]

    at.number_input(key="run.stride").set_value(2.0)
    at.button(key="run.timeline").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    chart = next(c for c in charts(at) if c["data"][0]["type"] == "scatter")
    over_time = vac.predict_timeline("timesformer_base", CLIP, stride_s=2.0, weights=ENTRY, device="cpu")
    assert chart["data"][0]["x"] == [w["start_s"] for w in over_time["windows"]]
    top1 = {w["predictions"][0]["label"]: w["predictions"][0]["probability"] for w in over_time["windows"]}
    for trace in chart["data"]:
        assert trace["name"] in top1  # every line is some window's top-1 class


def test_inputs_read_exactly_the_frames_the_plan_chose(tmp_path):
    """``load_inputs`` decodes the plan's ``frame_indices`` (it does not sample again): frames the plan changed are
    the frames read, and a plan of another clip is refused with the reason."""
    from clips import read_index, write_video

    clip = write_video(tmp_path / "indexed.mp4", 60, codec="libx264", gop=1)
    plan = vac.runtime.plan_run("timesformer_base", clip, overrides=TINY, device="cpu", estimate=False)
    assert plan.frame_indices == [vac.clip_indices(60, 4, plan.recipe.sampling_rate, fps=30.0,
                                                   target_fps=plan.recipe.target_fps, rule=plan.recipe.clip_rule)]
    plan.frame_indices = [[3, 17, 17, 41]]  # not what sampling would pick
    loaded = vac.runtime.load_inputs(plan, clip)
    assert list(loaded.clip.frame_indices) == [3, 17, 17, 41]
    assert [read_index(f) for f in loaded.clip.frames] == [3, 17, 17, 41]
    short = write_video(tmp_path / "short.mp4", 20, codec="libx264", gop=1)
    with pytest.raises(vac.VideoError, match="planned frames 3–41 are not all in this clip, which has 20 frames"):
        vac.runtime.load_inputs(plan, short)
