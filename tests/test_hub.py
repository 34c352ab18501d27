"""Users' own Hugging Face models, named by where they live, give what transformers gives.

The reference is ``../shared/reference/hub``: four fine-tune-like repositories and the probabilities transformers
5.25 computes for each on a real clip at frame rates 1 and 4 (its video-classification pipeline's reading). They are
read here from their directories, by ``hf:`` id from a stand-in Hub on 127.0.0.1, and then offline from the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import videoattn_core as vac
from videoattn_core.weights import hub
from videoattn_core.run import runtime
from videoattn_core.errors import CheckpointError, ConfigError, WeightsError
from videoattn_core.weights.catalog.records import IMAGENET_MEAN

from reference import REFERENCE_DIR, ROOT
from standin_hub import StandInHub

HUB = REFERENCE_DIR / "hub"
REPOS = ("videomae-small-finetuned", "timesformer-small-finetuned", "vivit-small-finetuned",
         "videomae-small-multilabel")
CLIP = HUB / "clip.mp4"
TOL = 1e-4


@pytest.fixture(scope="module")
def expected() -> dict:
    path = HUB / "expected.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing (../shared/reference/hub must sit beside the repo)")
    return json.loads(path.read_text())["expected"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache of this test's own; no token, not offline."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    hub._open.cache_clear()
    yield tmp_path / "hf" / "hub"
    hub._open.cache_clear()


@pytest.fixture
def standin(cache, monkeypatch):
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def _assert_scores(prediction: vac.Prediction, want: dict) -> None:
    ours = {p["label"]: p["probability"] for p in prediction.predictions}
    assert set(ours) == set(want["scores"])
    worst = max(abs(ours[k] - v) for k, v in want["scores"].items())
    assert worst <= TOL, f"max |ours − transformers| = {worst:.2e}"
    assert prediction.clip["sampled_indices"] == want["frame_indices"]


@pytest.mark.parametrize("repo", REPOS)
@pytest.mark.parametrize("rate", (1, 4))
def test_a_model_directory_gives_transformers_probabilities(repo, rate, expected, cache):
    result = vac.predict(str(HUB / "repos" / repo), CLIP, sampling_rate=rate, top_k=100)
    _assert_scores(result, expected[repo][f"rate{rate}"])
    multi = repo.endswith("multilabel")
    assert result.scoring == ("sigmoid" if multi else "softmax")
    assert abs(sum(result.probabilities) - 1) > 0.5 if multi else abs(sum(result.probabilities) - 1) < 1e-5
    assert result.recipe["clip_rule"] == "huggingface" and result.recipe["sampling_rate"] == rate


def test_hub_ids_from_a_standin_hub_then_offline_from_the_cache(expected, standin, monkeypatch):
    for repo in REPOS:
        standin.add(f"someone/{repo}", HUB / "repos" / repo)
    for repo in REPOS:
        result = vac.predict(f"hf:someone/{repo}", CLIP, top_k=100)
        _assert_scores(result, expected[repo]["rate1"])
        assert result.repository["commit"] == standin.repos[f"someone/{repo}"].commit
    asked = len(standin.requests)
    standin.httpd.shutdown()  # the Hub goes away: the cache is enough
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub._open.cache_clear()
    for repo in REPOS:
        result = vac.predict(f"hf:someone/{repo}", CLIP, sampling_rate=4, top_k=100)
        _assert_scores(result, expected[repo]["rate4"])
    assert len(standin.requests) == asked


def test_predict_json_equals_transformers(expected, standin, cache):
    repo = "videomae-small-multilabel"
    standin.add(f"someone/{repo}", HUB / "repos" / repo)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "videoattn_core", "predict", f"hf:someone/{repo}", "--clip", str(CLIP),
                          "--sampling-rate", "4", "--json", "--top-k", "3"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    labels = result["repository"]["labels"]
    want = expected[repo]["rate4"]["scores"]
    assert max(abs(p - want[labels[i]]) for i, p in enumerate(result["probabilities"])) <= TOL
    assert result["scoring"] == "sigmoid" and len(result["predictions"]) == 3


def test_dry_run_shows_the_repository_resolved_to_a_commit(standin):
    repo = standin.add("someone/vivit-small", HUB / "repos" / "vivit-small-finetuned")
    plan = runtime.plan_run("hf:someone/vivit-small@main", CLIP, sampling_rate=2).to_dict()
    assert plan["repository"]["commit"] == repo.commit and plan["repository"]["revision"] == "main"
    assert plan["repository"]["architecture"] == "VivitForVideoClassification"
    assert plan["recipe"]["resize"] == 240 and plan["recipe"]["offset"] == -1.0  # the repository's processor
    assert plan["recipe"]["rescale"] == pytest.approx(1 / 127.5)
    assert plan["frame_indices"] == [[int(i) for i in torch.linspace(0, 31, 16).long()]]
    assert plan["weights"]["kind"] == "repository" and plan["weights"]["cached"] is False
    assert not standin.fetched("model.safetensors")  # a plan fetches no weights
    refs = Path(os.environ["HF_HOME"]) / "hub" / "models--someone--vivit-small" / "refs" / "main"
    assert refs.read_text() == repo.commit


def test_summaries_need_only_config_json(standin):
    standin.add("someone/timesformer-small", HUB / "repos" / "timesformer-small-finetuned")
    summary = vac.summarize("hf:someone/timesformer-small")
    assert summary.params == sum(t.numel() for t in load_file(
        HUB / "repos" / "timesformer-small-finetuned" / "model.safetensors").values())
    assert standin.fetched("config.json") and not standin.fetched("model.safetensors")


def test_hf_token_opens_a_private_repository(standin, monkeypatch):
    standin.add("someone/private", HUB / "repos" / "videomae-small-finetuned", token="hf_secret")
    with pytest.raises(WeightsError, match="not found.*set HF_TOKEN"):
        vac.get_preset("hf:someone/private")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert vac.get_preset("hf:someone/private").origin.architecture == "VideoMAEForVideoClassification"


def test_refusals_say_what_happened(standin):
    standin.add("someone/gated", HUB / "repos" / "videomae-small-finetuned", token="t", gated=True)
    with pytest.raises(WeightsError, match="gated.*HF_TOKEN"):
        vac.get_preset("hf:someone/gated")
    with pytest.raises(WeightsError, match="someone/absent was not found"):
        vac.get_preset("hf:someone/absent")
    standin.add("someone/model", HUB / "repos" / "videomae-small-finetuned")
    with pytest.raises(WeightsError, match="no revision 'v9'"):
        vac.get_preset("hf:someone/model@v9")
    for bad in ("hf:nothing", "hf:a/b/c", "hf:../x", "hf:a/b@..%2f"):
        with pytest.raises(ConfigError, match="not a Hub model id|not a branch"):
            vac.get_preset(bad)


def test_no_network_and_no_cache_says_where_to_put_the_files(cache, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsError, match="cannot be reached.*holds no someone/model.*directory"):
        vac.get_preset("hf:someone/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set"):
        vac.get_preset("hf:someone/model")


def _copy(repo: str, tmp_path: Path) -> Path:
    target = tmp_path / repo
    shutil.copytree(HUB / "repos" / repo, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("changes, field", [
    ({"hidden_size": 10 ** 9}, "hidden_size"),
    ({"num_frames": 0}, "num_frames"),
    ({"image_size": -224}, "image_size"),
    ({"num_attention_heads": 5}, "num_attention_heads"),
    ({"id2label": {str(i): f"c{i}" for i in range(1_000_000)}}, "id2label"),
    ({"hidden_act": "relu"}, "hidden_act"),
    ({"architectures": ["VideoMAEForPreTraining"]}, "architectures"),
    ({"problem_type": "regression"}, "problem_type"),
])
def test_hostile_configs_are_refused_naming_the_field(changes, field, tmp_path, cache):
    folder = _copy("videomae-small-finetuned", tmp_path)
    _edit_config(folder, **changes)
    with pytest.raises(ConfigError) as info:
        vac.summarize(str(folder))
    assert info.value.field == field and field in str(info.value)
    if field == "architectures":
        assert "VivitForVideoClassification" in str(info.value)  # the supported ones are listed


def test_hostile_processor_configs(tmp_path, cache):
    folder = _copy("videomae-small-finetuned", tmp_path)
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**processor, "frobnicate": 3}))
    assert any("frobnicate" in w for w in vac.get_preset(str(folder)).origin.warnings)
    for key, value in (("image_std", [0, 1, 1]), ("resample", 9), ("crop_size", {"height": 224, "width": 200}),
                       ("size", {"longest_edge": 300}), ("crop_size", 160)):
        (folder / "preprocessor_config.json").write_text(json.dumps({**processor, key: value}))
        with pytest.raises(ConfigError) as info:
            vac.get_preset(str(folder))
        assert info.value.field == key


def test_weights_that_are_missing_hostile_or_wrong(tmp_path, cache):
    folder = _copy("timesformer-small-finetuned", tmp_path)
    (folder / "model.safetensors").unlink()
    assert vac.summarize(str(folder)).params > 0  # shapes and costs need no weights
    with pytest.raises(WeightsError, match="holds no weights"):
        vac.predict(str(folder), CLIP)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"x": Payload()}, folder / "pytorch_model.bin")  # loading it unsafely would run the command
    with pytest.raises(CheckpointError, match="refused"):
        vac.predict(str(folder), CLIP)
    assert not (tmp_path / "ran").exists()

    weights = load_file(HUB / "repos" / "timesformer-small-finetuned" / "model.safetensors")
    (folder / "pytorch_model.bin").unlink()
    save_file(weights, folder / "model.safetensors")
    _edit_config(folder, num_hidden_layers=3)
    with pytest.raises(CheckpointError, match="missing"):
        vac.predict(str(folder), CLIP)


def test_sharded_and_pickled_weights_from_the_hub(expected, standin, tmp_path):
    """A sharded safetensors repository and a pytorch_model.bin one (read with weights_only=True) give the same
    probabilities as the single-file original."""
    weights = load_file(HUB / "repos" / "vivit-small-finetuned" / "model.safetensors")
    sharded = _copy("vivit-small-finetuned", tmp_path / "sharded")
    (sharded / "model.safetensors").unlink()
    names = sorted(weights)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_file({k: weights[k] for k in keys}, sharded / shard)
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    pickled = _copy("vivit-small-finetuned", tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    torch.save(weights, pickled / "pytorch_model.bin")
    standin.add("someone/sharded", sharded)
    standin.add("someone/pickled", pickled)
    for repo in ("someone/sharded", "someone/pickled"):
        _assert_scores(vac.predict(f"hf:{repo}", CLIP, top_k=10), expected["vivit-small-finetuned"]["rate1"])
    assert standin.fetched("model-00001-of-00002.safetensors") and standin.fetched("model-00002-of-00002.safetensors")


def test_sampling_rate_belongs_to_the_pipeline_reading(cache):
    with pytest.raises(ConfigError, match="keeps its published sampling") as info:
        runtime.plan_run("timesformer_base", sampling_rate=2, estimate=False)
    assert info.value.field == "sampling_rate"
    with pytest.raises(ConfigError, match="from 1 to 1000"):
        runtime.plan_run(str(HUB / "repos" / "vivit-small-finetuned"), sampling_rate=0, estimate=False)
    with pytest.raises(ConfigError, match="one temporal view"):
        runtime.plan_run(str(HUB / "repos" / "vivit-small-finetuned"), views="2x1", estimate=False)


def test_a_checkpoint_directory_under_a_preset_says_its_processor_is_not_used(cache):
    plan = runtime.plan_run("videomae_base", checkpoint=HUB / "repos" / "videomae-small-finetuned", estimate=False)
    assert plan.recipe.clip_rule == "videomae"  # the preset's recipe
    assert any("Name the directory as the model" in w for w in plan.warnings)
    assert plan.config.embed_dim == 192  # the directory's config.json still builds its model


def test_unknown_names_say_what_is_accepted(cache):
    with pytest.raises(ConfigError, match="hf:ORG/NAME"):
        vac.get_preset("no_such_model")
    with pytest.raises(ConfigError, match="neither a preset nor a directory"):
        vac.get_preset("./no/such/dir")
    with pytest.raises(ConfigError, match="holds no config.json"):
        vac.get_preset(str(HUB))


def test_processor_exact_size_other_filter_and_no_crop(tmp_path, cache):
    """``size: {height, width}`` resizes to exactly that, with the processor's filter (PIL's bicubic here), and
    ``do_center_crop: false`` keeps the whole frame — what transformers' PIL processor computes."""
    from PIL import Image

    folder = _copy("videomae-small-finetuned", tmp_path)
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    processor.update(size={"height": 224, "width": 224}, do_center_crop=False, resample=3)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    plan = runtime.plan_run(str(folder), CLIP, estimate=False)
    loaded = runtime.load_inputs(plan, CLIP)
    frames = vac.read_clip(CLIP, 16, 1, rule="huggingface").frames
    mean, std = (torch.tensor(processor[k]).view(3, 1, 1, 1) for k in ("image_mean", "image_std"))
    resized = torch.stack([torch.from_numpy(np.array(Image.fromarray(f).resize((224, 224), Image.Resampling.BICUBIC)))
                           for f in frames]).permute(3, 0, 1, 2).float()
    want = (resized * processor["rescale_factor"] - mean) / std
    assert loaded.tensor.shape == (1, 3, 16, 224, 224)
    assert torch.allclose(loaded.tensor[0], want, atol=1e-5)
    assert plan.recipe.to_dict()["resampling"]["interpolation"] == "bicubic"


def test_a_vjepa2_directory_reads_its_video_processor(tmp_path, cache):
    """V-JEPA 2's config.json (no frame count: the family default, said in a warning) and its
    video_preprocessor_config.json, whose resize VJEPA2VideoProcessor derives from the crop (int(crop·256/224))."""
    folder = tmp_path / "vjepa2-tiny"
    folder.mkdir()
    config = {"architectures": ["VJEPA2ForVideoClassification"], "model_type": "vjepa2", "hidden_size": 96,
              "num_attention_heads": 2, "num_hidden_layers": 2, "crop_size": 64, "pred_hidden_size": 48,
              "pred_num_attention_heads": 2, "pred_num_hidden_layers": 1, "num_pooler_layers": 1,
              "id2label": {"0": "a", "1": "b", "2": "c"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "video_preprocessor_config.json").write_text(json.dumps(
        {"video_processor_type": "VJEPA2VideoProcessor", "crop_size": {"height": 64, "width": 64},
         "size": {"shortest_edge": 999}}))
    preset = vac.get_preset(str(folder))
    assert (preset.config.embed_dim, preset.config.depth, preset.config.img_size, preset.config.num_classes) == \
        (96, 2, 64, 3)
    recipe = preset.origin.recipe
    assert (recipe.resize, recipe.crop, recipe.resampling, recipe.mean) == (73, 64, "huggingface_video",
                                                                           IMAGENET_MEAN)
    assert any("how many frames" in w for w in preset.origin.warnings)
    loaded = runtime.load_inputs(runtime.plan_run(str(folder), CLIP, estimate=False), CLIP)
    assert loaded.tensor.shape == (1, 3, 16, 64, 64) and torch.isfinite(loaded.tensor).all()
    assert vac.summarize(str(folder)).params > 0
