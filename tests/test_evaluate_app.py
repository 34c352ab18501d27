"""The Evaluation page (AppTest) and its figures: a results file of ``evaluate`` opened from the results folder,
paths outside it refused."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import videoattn_core as vac
from videoattn_core import figures
from videoattn_core.evaluation import compute_metrics, results
from evaluation_data import MODEL, overrides, write_clips, write_mmaction
from test_app import APP, array, open_app

CLASSES = [3, 7, 3, 11, 7, 3, 20, 11]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    paths = write_clips(folder / "source")
    path = write_mmaction(folder / "data", paths, CLASSES)
    with path.open("a") as handle:
        handle.write("clips/missing.mp4 3\n")
    (folder / "runs").mkdir()
    vac.evaluate(MODEL, path, overrides=overrides(400), views="single", device="cpu", workers=0,
                 out=folder / "runs" / "tiny.jsonl")
    return folder / "runs"


def open_page(monkeypatch, folder, **params) -> AppTest:
    monkeypatch.setenv(results.RESULTS_DIR_ENV, str(folder))
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("pages/evaluation.py")
    at.query_params.clear()
    at.query_params.update(params)
    return at.run()


def test_page_shows_the_metrics_of_a_results_file(monkeypatch, results_dir):
    at = open_page(monkeypatch, results_dir, file="tiny.jsonl")
    assert not at.exception, [e.value for e in at.exception]
    header, rows = results.read_results(results_dir / "tiny.jsonl")
    m = compute_metrics(rows, header["labels"])
    shown = {x.label: x.value for x in at.metric}
    assert shown["top-1"] == f"{100 * m['top1']:.2f}%" and shown["top-5"] == f"{100 * m['top5']:.2f}%"
    assert shown["mean class accuracy"] == f"{100 * m['mean_class_accuracy']:.2f}%"
    assert shown["clips scored"] == "8 of 9" and shown["errors"] == "1"
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars, heat = specs[0]["data"][0], specs[1]["data"][0]
    assert sorted(array(bars["x"]).tolist()) == sorted(c["accuracy"] for c in m["per_class"])
    counts = np.array(m["confusion"]["matrix"], dtype=float)
    z = array(heat["z"]).reshape(counts.shape)
    expected = np.where(counts > 0, counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), np.nan)
    np.testing.assert_allclose(z, expected)
    assert heat["y"] == m["confusion"]["labels"]
    worst = at.dataframe[1].value
    assert worst["clip"].tolist() == [w["path"] for w in m["worst"]]
    for link in worst["run"]:  # the model and weights of the evaluation, on the Run page
        assert link.startswith("/run?")
        assert parse_qs(link[5:]) == {"model": ["timesformer_base"], "depth": ["1"], "embed_dim": ["32"],
                                      "num_heads": ["2"], "img_size": ["32"], "weights": ["random"]}
    assert "missing.mp4" in at.dataframe[2].value["path"].iloc[0]


@pytest.mark.parametrize("name, message", [("../../etc/passwd.jsonl", "is outside the results folder"),
                                           ("/etc/hostname", "is outside the results folder"),
                                           ("nothing.jsonl", "no .jsonl results file of that name")])
def test_paths_outside_the_folder_are_refused(monkeypatch, results_dir, name, message):
    at = open_page(monkeypatch, results_dir, file=name)
    assert not at.exception
    assert any(message in e.value for e in at.error)
    assert not at.metric


def test_without_a_results_folder_the_page_says_how_to_set_one(monkeypatch, results_dir):
    monkeypatch.delenv(results.RESULTS_DIR_ENV, raising=False)
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("pages/evaluation.py")
    at.run()
    assert not at.exception and any(results.RESULTS_DIR_ENV in i.value for i in at.info)


def test_confusion_heatmap_uses_the_heat_scale_and_shares():
    fig = figures.confusion_heatmap(["a", "b"], [[3, 1], [0, 2]])
    trace = fig.data[0]
    assert [c for _, c in trace.colorscale] == [c for _, c in figures.HEAT_SCALE]
    np.testing.assert_allclose(trace.z, [[0.75, 0.25], [np.nan, 1.0]])
    assert list(trace.customdata[0]) == [3, 1]
    bars = figures.per_class_accuracy(["a", "b", "c"], [0.5, 1.0, 0.0], [2, 1, 3], mean=0.5).data[0]
    assert list(bars.y) == ["b", "a", "c"]  # the worst class drawn on top


def test_worst_clip_opens_on_the_run_page_under_the_clip_folder(monkeypatch, results_dir):
    monkeypatch.setenv(results.DATA_DIR_ENV, str(results_dir.parent / "data"))
    at = open_page(monkeypatch, results_dir, file="tiny.jsonl")
    link = at.dataframe[1].value["run"].iloc[0]
    params = {k: v[0] for k, v in parse_qs(link[5:]).items()}
    clip = at.dataframe[1].value["clip"].iloc[0]
    assert params["clip"] == "file:" + clip
    run = open_app("run", **params)
    assert not run.exception and not run.error, [e.value for e in run.error]
    assert run.selectbox(key="run.clip").value == "file:" + clip
    assert run.get("plotly_chart")  # the frames and the predictions of that clip

    monkeypatch.setenv(results.DATA_DIR_ENV, str(results_dir))  # the clip is no longer under the folder
    run = open_app("run", **params)
    assert not run.exception
    assert any("is outside the clip folders" in w.value for w in run.warning)


def test_a_small_evaluation_runs_from_the_page(monkeypatch, tmp_path):
    """With a data folder and a results folder configured, the page evaluates a few clips itself (a progress bar
    as it goes), writes the rows to a new results file and shows what vac.evaluate computes for them."""
    data, runs = tmp_path / "data", tmp_path / "runs"
    runs.mkdir()
    path = write_mmaction(data, write_clips(data / "source"), CLASSES)
    monkeypatch.setenv(results.DATA_DIR_ENV, str(data))
    at = open_page(monkeypatch, runs)
    at.text_input(key="evaluation.run.sets").set_value("depth=1 embed_dim=32 num_heads=2 img_size=32")
    at.text_input(key="evaluation.run.data").set_value(str(path))
    at.number_input(key="evaluation.run.limit").set_value(5)
    at.run()  # the inputs committed (the button waits for a model and a dataset)
    at.button(key="evaluation.run.go").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    written = results.list_results(runs)
    assert len(written) == 1 and written[0].startswith("app-")
    lines = (runs / written[0]).read_text().splitlines()
    assert len(lines) == 1 + 5  # the header, then one row per clip
    want = vac.evaluate(MODEL, path, overrides=overrides(400), views="single", device="cpu", workers=0, limit=5)
    shown = {m.label: m.value for m in at.metric}
    assert shown["top-1"] == f"{100 * want.metrics['top1']:.2f}%" and shown["clips scored"] == "5 of 5"
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x 1\n")
    at.text_input(key="evaluation.run.data").set_value(str(outside))
    at.button(key="evaluation.run.go").click()
    at.run()
    assert any("outside the clip folders" in e.value for e in at.error)
