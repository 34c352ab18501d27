"""Hugging Face models in the app (``hf:ORG/NAME[@REVISION]``), through Streamlit's AppTest against a stand-in Hub
serving the fine-tunes of ``../shared/reference/hub``: the Run page's predictions are transformers' numbers for
the repository's weights (softmax, or a multi-label model's independent sigmoid scores), at the pipeline's
sampling rate 1 and 4; the model and the rate travel in share links, a link to a model that cannot be opened (or
to a local directory) is ignored with the reason; the Model page shows the repository's card without fetching its
weights; the Attention and Side-by-side pages take the model as they take a preset."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pages._cache  # noqa: E402  (the pages' modules, whose sample clips the tests extend)
import pages._clips  # noqa: E402
import pages._widgets  # noqa: E402
import videoattn_core as vac  # noqa: E402
from standin_hub import StandInHub  # noqa: E402
from test_app import array, assert_clean, charts, metric, open_app, sidebar_widget  # noqa: E402

HUB = Path(os.environ.get("VIDEOATTN_REFERENCE", ROOT.parent / "shared" / "reference")) / "hub"
pytestmark = pytest.mark.skipif(not (HUB / "expected.json").is_file(),
                                reason=f"the Hub fixtures {HUB} are absent (../shared/reference/hub beside the repo)")
EXPECTED = json.loads((HUB / "expected.json").read_text())["expected"] if (HUB / "expected.json").is_file() else {}
CLIP = "hub_clip"  # the fixture's clip.mp4, offered as a sample clip
SINGLE, MULTI = "videomae-small-finetuned", "videomae-small-multilabel"
SMALL_TSF = {"depth": "2", "img_size": "64"}  # what a fallback to timesformer_base keeps light


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stand-in Hub serving every fixture repository as org/NAME, an empty HF cache, and clip.mp4 as a sample
    clip (the default one)."""
    with StandInHub() as server:
        for name in EXPECTED:
            server.add(f"org/{name}", HUB / "repos" / name)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        clips = {CLIP: HUB / "clip.mp4", **pages._clips.sample_clips()}
        monkeypatch.setattr(pages._clips, "sample_clips", lambda: dict(clips))  # what the pages' clips come from
        monkeypatch.setattr(pages._clips, "default_clip", lambda: CLIP)
        yield server


def topk(at) -> dict[str, float]:
    bars = next(c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h")
    return dict(zip(bars["data"][0]["y"], array(bars["data"][0]["x"]).tolist())), bars


def assert_scores(shown: dict[str, float], repo: str, rate: int) -> None:
    expected = EXPECTED[repo][f"rate{rate}"]["scores"]
    assert len(shown) == len(expected)
    for label, score in shown.items():
        assert abs(score - expected[label]) < 1e-4, (label, score, expected[label])


@pytest.mark.parametrize("repo", [SINGLE, MULTI])
def test_run_page_predicts_transformers_scores_at_rates_1_and_4_and_the_link_keeps_them(hub, repo):
    labels = len(EXPECTED[repo]["rate1"]["scores"])
    at = open_app("run", model=f"hf:org/{repo}", topk=str(labels))
    assert_clean(at)
    assert sidebar_widget(at, "run:w.hub").value == f"hf:org/{repo}"
    weights = at.selectbox(key="run.weights")
    assert weights.value == "repository" and "the repository's weights" in weights.options
    assert not any("Random weights" in w.value for w in at.warning)
    assert at.number_input(key="run.sampling_rate").value == 1
    shown, bars = topk(at)
    assert_scores(shown, repo, 1)
    independent = [c.value for c in at.caption if "independent score" in c.value]
    title = bars["layout"]["title"]["text"]
    if repo == MULTI:  # sigmoid scores: said so in a caption, on the axis and in the title
        assert independent and "not a share of a distribution" in independent[0]
        assert bars["layout"]["xaxis"]["title"]["text"] == "independent score (sigmoid)"
        assert "independent scores" in title
    else:
        assert not independent and bars["layout"]["xaxis"]["title"]["text"] == "probability"
        assert abs(sum(shown.values()) - 1) < 1e-4
    assert hub.fetched("model.safetensors")

    at.number_input(key="run.sampling_rate").set_value(4).run()
    assert_clean(at)
    assert_scores(topk(at)[0], repo, 4)
    assert at.query_params == {"model": f"hf:org/{repo}", "clip": CLIP, "sampling_rate": "4",
                               **({"topk": str(labels)} if labels != 5 else {})}
    again = open_app("run", **at.query_params)  # the share link reopens the same view
    assert_clean(again)
    assert again.number_input(key="run.sampling_rate").value == 4
    assert_scores(topk(again)[0], repo, 4)


def test_sampling_rate_is_hidden_for_presets_and_not_written_into_their_links(hub):
    at = open_app("run", model="timesformer_base", **SMALL_TSF, sampling_rate="4")
    assert_clean(at)
    assert not [w for w in at.number_input if w.key == "run.sampling_rate"]
    assert "sampling_rate" not in at.query_params and at.selectbox(key="run.weights").value == "random"


@pytest.mark.parametrize("model,reason", [
    ("hf:org/no-such-model", "was not found"),
    ("hf:org/bad name!", "is not a Hub model id"),
    ("hf:org/videomae-small-finetuned@no-such-branch", "has no revision"),
    (str(HUB / "repos" / SINGLE), "a local directory is never opened from a link"),
    ("org/videomae-small-finetuned", "only hf:ORG/NAME ids travel in links"),
])
def test_link_to_a_model_that_cannot_be_opened_is_ignored_with_the_reason(hub, monkeypatch, model, reason):
    from videoattn_core.weights import hub as hub_module

    opened = []
    real_open = hub_module.open_model
    monkeypatch.setattr(hub_module, "open_model", lambda name: opened.append(str(name)) or real_open(name))
    at = open_app("model", model=model, **SMALL_TSF)
    assert_clean(at)
    message = at.warning[0].value
    assert f"model={model!r}"[:60] in message and reason in message and "showing timesformer_base" in message
    assert sidebar_widget(at, "model:w.preset").value == "timesformer_base"
    assert sidebar_widget(at, "model:w.hub").value == ""
    assert metric(at, "parameters") == f"{vac.summarize('timesformer_base', depth=2, img_size=64).params:,}"
    if not model.startswith("hf:"):  # the server never looked at a path a link named
        assert not any(str(HUB) in name for name in opened) and not hub.requests


def test_model_page_shows_the_repository_card_before_any_weights_are_fetched(hub):
    repo = f"org/{MULTI}"
    at = open_app("model", model=f"hf:{repo}")
    assert_clean(at)
    card = "\n".join(m.value for m in at.markdown)
    for words in ("VideoMAEForVideoClassification", hub.repos[repo].commit, "multi_label_classification",
                  "sigmoid", "preprocessor_config.json (VideoMAEImageProcessor)", "16 frames, 1 apart",
                  "short side 224, centre crop 224"):
        assert words in card, words
    labels = json.loads((HUB / "repos" / MULTI / "config.json").read_text())["id2label"]
    listed = next(c.value for c in at.caption if "Archery" in c.value)
    assert listed == " · ".join(f"{i} {labels[str(i)]}" for i in range(len(labels)))
    assert at.json[0].value and json.loads(at.json[0].value)["image_processor_type"] == "VideoMAEImageProcessor"
    assert metric(at, "parameters") == f"{vac.summarize(f'hf:{repo}').params:,}"
    assert at.query_params == {"model": f"hf:{repo}"}
    assert hub.fetched("config.json") and not hub.fetched("model.safetensors")


def test_typed_model_with_an_override_travels_in_the_link(hub, monkeypatch):
    at = open_app("model")
    sidebar_widget(at, "model:w.hub").set_value("org/timesformer-small-finetuned").run()
    assert_clean(at)
    assert at.query_params == {"model": "hf:org/timesformer-small-finetuned"}
    assert sidebar_widget(at, "model:w.preset").disabled
    sidebar_widget(at, "model:hp.hf:org/timesformer-small-finetuned.depth").set_value(1).run()
    assert_clean(at)
    assert at.query_params == {"model": "hf:org/timesformer-small-finetuned", "depth": "1"}
    again = open_app("model", **at.query_params)
    assert_clean(again)
    expected = vac.summarize("hf:org/timesformer-small-finetuned", depth=1).params
    assert metric(again, "parameters") == f"{expected:,}" != f"{vac.summarize('hf:org/timesformer-small-finetuned').params:,}"
    # a local directory typed into the field: opened only where the server allows it, and its link is refused
    folder = str((HUB / "repos" / "vivit-small-finetuned").resolve())  # a directory model is named by its real path
    monkeypatch.setenv("VIDEOATTN_LOCAL_MODELS", "0")
    sidebar_widget(at, "model:w.hub").set_value(folder).run()
    assert_clean(at)
    assert any("does not open local directories" in e.value for e in at.error)
    monkeypatch.setenv("VIDEOATTN_LOCAL_MODELS", "1")
    at.run()
    assert_clean(at)
    assert at.query_params["model"] == folder and "VivitForVideoClassification" in "\n".join(m.value for m in at.markdown)
    shared = open_app("model", **at.query_params)
    assert "never opened from a link" in shared.warning[0].value


def test_attention_page_explains_a_hub_model(hub):
    at = open_app("attention", model=f"hf:org/{SINGLE}", explain="relevance")
    assert_clean(at)
    heat = [array(t["z"]) for c in charts(at) for t in c["data"] if t["type"] == "heatmap"]
    assert heat and all(np.isfinite(h).all() for h in heat)
    top = max(EXPECTED[SINGLE]["rate1"]["scores"].items(), key=lambda kv: kv[1])
    assert any(f"relevance for {top[0]}" in c["layout"].get("title", {}).get("text", "") for c in charts(at))


def test_side_by_side_compares_a_hub_model_with_a_preset(hub):
    at = open_app("side_by_side", m1=f"hf:org/{MULTI}", m2="timesformer_base;depth=2;img_size=64")
    assert_clean(at)
    assert at.text_input(key="side.hub").value == f"hf:org/{MULTI}"
    assert at.selectbox(key="side.m1.weights").value == "repository"
    bars = [c for c in charts(at) if c["data"][0]["type"] == "bar" and c["data"][0].get("orientation") == "h"]
    assert len(bars) == 2 and "independent scores" in bars[0]["layout"]["title"]["text"]
    shown = dict(zip(bars[0]["data"][0]["y"], array(bars[0]["data"][0]["x"]).tolist()))
    expected = EXPECTED[MULTI]["rate1"]["scores"]
    assert shown and all(abs(v - expected[k]) < 1e-4 for k, v in shown.items())
    assert at.query_params["m1"] == f"hf:org/{MULTI}"
