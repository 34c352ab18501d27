"""The ``evaluate`` command and ``vac.evaluate``: every annotation format, metrics against scikit-learn's, resuming,
broken clips, label mapping errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, top_k_accuracy_score

import videoattn_core as vac
from videoattn_core.evaluation import results
from evaluation_data import (MODEL, NUM_CLIPS, cli_sets, overrides, probabilities, targets, write_clips,
                             write_folders, write_kinetics, write_mmaction, write_ssv2)

K400 = vac.load_labels("kinetics400")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The clips, each clip's reference probabilities under the tiny model (400 and 174 classes), its classes."""
    folder = tmp_path_factory.mktemp("evaluation")
    paths = write_clips(folder / "source")
    probs400, probs174 = probabilities(paths, 400), probabilities(paths, 174)
    return {"folder": folder, "paths": paths, "probs400": probs400, "classes400": targets(probs400),
            "probs174": probs174, "classes174": targets(probs174)}


def _spellings(classes: list[int]) -> list[str]:
    """Kinetics names as the sources spell them: as listed, with underscores, quoted, in capitals."""
    out = []
    for n, k in enumerate(classes):
        name = K400[k]
        out.append([name, name.replace(" ", "_"), f'"{name}"', name.upper()][n % 4])
    return out


def _check_against_sklearn(evaluation, probs: np.ndarray, classes: list[int]) -> None:
    m, k = evaluation.metrics, probs.shape[1]
    predicted = probs.argmax(axis=1)
    assert m["scored"] == NUM_CLIPS and m["errors"] == 0
    assert m["top1"] == pytest.approx(float((predicted == np.array(classes)).mean()))
    assert m["top5"] == pytest.approx(top_k_accuracy_score(classes, probs, k=5, labels=list(range(k))))
    assert m["mean_class_accuracy"] == pytest.approx(balanced_accuracy_score(classes, predicted))
    union = sorted(set(classes) | set(predicted.tolist()))
    assert m["confusion"]["classes"] == union
    assert m["confusion"]["matrix"] == confusion_matrix(classes, predicted, labels=union).tolist()
    assert 0 < m["top1"] < m["top5"] < 1  # the dataset was built so that neither is trivial
    for row, p in zip(evaluation.rows, probs):  # the rows' top-5 are the independent run's
        assert [q["index"] for q in row["top5"]] == np.argsort(-p, kind="stable")[:5].tolist()
        assert [q["probability"] for q in row["top5"]] == pytest.approx(np.sort(p)[::-1][:5], abs=1e-6)


def test_kinetics_csv_metrics_match_sklearn(data, tmp_path):
    csv_path = write_kinetics(tmp_path, data["paths"], _spellings(data["classes400"]))
    result = vac.evaluate(MODEL, csv_path, tmp_path / "videos", overrides=overrides(400), views="single",
                          device="cpu", workers=0)
    assert result.header["match"] == "by name" and result.header["format"] == "kinetics"
    assert [r["target"] for r in result.rows] == data["classes400"]
    _check_against_sklearn(result, data["probs400"], data["classes400"])


def test_ssv2_json_maps_by_index_without_model_names(data, tmp_path):
    path = write_ssv2(tmp_path, data["paths"], data["classes174"], 174)
    result = vac.evaluate(MODEL, path, overrides=overrides(174), views="single", device="cpu", workers=2,
                          batch_size=3)  # decoded in two workers, three clips a forward
    assert result.header["match"] == "by index" and result.header["format"] == "ssv2"
    _check_against_sklearn(result, data["probs174"], data["classes174"])


def test_mmaction_list(data, tmp_path):
    path = write_mmaction(tmp_path, data["paths"], data["classes400"])
    result = vac.evaluate(MODEL, path, overrides=overrides(400), views="single", device="cpu", workers=0)
    assert result.header["match"] == "by index" and result.header["format"] == "mmaction"
    _check_against_sklearn(result, data["probs400"], data["classes400"])


def test_folder_per_class(data, tmp_path):
    root = write_folders(tmp_path / "classes", data["paths"], [K400[k] for k in data["classes400"]])
    result = vac.evaluate(MODEL, root, overrides=overrides(400), views="single", device="cpu", workers=0)
    assert result.header["format"] == "folders"
    order = sorted(range(NUM_CLIPS), key=lambda n: (K400[data["classes400"][n]], n))  # folders in name order
    _check_against_sklearn(result, data["probs400"][order], [data["classes400"][n] for n in order])


def test_protocol_views_average_like_predict(data, tmp_path):
    """Three spatial crops (TimeSformer's 1×3): the video-level score is predict's view average."""
    path = write_mmaction(tmp_path, data["paths"][:3], data["classes400"][:3])
    result = vac.evaluate(MODEL, path, overrides=overrides(400), views="protocol", device="cpu", workers=0)
    reference = probabilities(data["paths"][:3], 400, views="protocol")
    assert result.header["views"] == [1, 3]
    for row, p in zip(result.rows, reference):
        assert [q["probability"] for q in row["top5"]] == pytest.approx(np.sort(p)[::-1][:5], abs=1e-6)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videoattn_core", "evaluate", *args], capture_output=True,
                          text=True, timeout=timeout)


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The command run in this process (the tests of its messages; the others start a process as a user does)."""
    from videoattn_core.cli.main import main

    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _strip_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in results.TIMING} for r in rows]


def test_broken_and_missing_clips_are_error_rows(data, tmp_path):
    path = write_mmaction(tmp_path, data["paths"][:3], data["classes400"][:3])
    (tmp_path / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    with path.open("a") as handle:
        handle.write("clips/broken.mp4 1\nclips/missing.mp4 2\n")
    out = tmp_path / "results.jsonl"
    done = run_cli(MODEL, "--data", str(path), "--out", str(out), "--views", "single", "--workers", "0",
                   "--device", "cpu", *cli_sets(400))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    header, rows = results.read_results(out)
    assert [bool(r["error"]) for r in rows] == [False, False, False, True, True]
    assert rows[3]["top5"] is None and rows[3]["path"].endswith("broken.mp4")
    assert "missing.mp4" in rows[4]["error"] or "no such" in rows[4]["error"].lower()
    assert "5 clips, 3 scored, 2 errors" in done.stdout
    assert "broken.mp4" in done.stdout and "missing.mp4" in done.stdout


def test_resume_after_an_interruption_gives_the_same_file(data, tmp_path):
    path = write_mmaction(tmp_path, data["paths"], data["classes400"])
    whole, partial = tmp_path / "whole.jsonl", tmp_path / "partial.jsonl"
    args = ["--data", str(path), "--views", "single", "--workers", "0", "--device", "cpu", *cli_sets(400)]
    assert run_cli(MODEL, *args, "--out", str(whole)).returncode == 0
    lines = whole.read_text().splitlines(keepends=True)
    # a run stopped after three clips, in the middle of writing the fourth
    partial.write_text("".join(lines[:4]) + lines[4][:25])
    resumed = run_cli(MODEL, *args, "--out", str(partial))
    assert resumed.returncode == 0, resumed.stderr
    assert "this run: 5 clips" in resumed.stdout  # only the clips not done
    (h1, r1), (h2, r2) = results.read_results(whole), results.read_results(partial)
    assert h1 == h2 and _strip_timing(r1) == _strip_timing(r2)
    again = run_cli(MODEL, *args, "--out", str(partial))  # everything done: nothing to run, same report
    assert "this run:" not in again.stdout and _strip_timing(results.read_results(partial)[1]) == _strip_timing(r1)


def test_results_of_another_evaluation_are_refused(data, tmp_path, capsys):
    path = write_mmaction(tmp_path, data["paths"][:2], data["classes400"][:2])
    out = tmp_path / "r.jsonl"
    args = ["--data", str(path), "--workers", "0", "--device", "cpu", "--out", str(out), *cli_sets(400)]
    assert in_process(capsys, MODEL, *args, "--views", "single")[0] == 0
    code, _, err = in_process(capsys, MODEL, *args, "--views", "protocol")
    assert code == 2 and err.startswith("error: ") and "holds results of another evaluation (views" in err


def test_unmapped_labels_are_listed_before_anything_runs(data, tmp_path):
    names = [K400[k] for k in data["classes400"][:3]]
    names[1] = "juggling chainsaws"
    csv_path = write_kinetics(tmp_path, data["paths"][:3], names)
    out = tmp_path / "r.jsonl"
    refused = run_cli(MODEL, "--data", str(csv_path), "--root", str(tmp_path / "videos"), "--out", str(out),
                      "--device", "cpu", *cli_sets(400))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "1 dataset label(s) map to no class of the model (by name): 'juggling chainsaws'" in refused.stderr
    assert not out.exists()
    skipped = vac.evaluate(MODEL, csv_path, tmp_path / "videos", overrides=overrides(400), views="single",
                           device="cpu", workers=0, skip_unmapped=True)
    assert skipped.skipped == 1 and len(skipped.rows) == 2 and "juggling chainsaws" in skipped.warnings[0]


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/val.csv"], "--data /nonexistent/val.csv: no such file or folder"),
    (["--data", "{bad}", "--batch-size", "0"], "batch_size=0 is not allowed"),
    (["--data", "{bad}", "--out", "r.csv"], "must end in .jsonl"),
    (["--data", "{bad}"], "expected 'path label_index'"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    bad = tmp_path / "list.txt"
    bad.write_text("only_a_path_no_label\n")
    code, _, err = in_process(capsys, MODEL, *[a.replace("{bad}", str(bad)) for a in args], "--device", "cpu",
                              *cli_sets(400))
    assert code == 2, err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_label_names_normalised_as_the_sources_write_them():
    from videoattn_core.evaluation import normalise

    spellings = ["passing American football (in game)", "passing_American_football_(in_game)",
                 '"passing American football (in game)"', "  Passing  american FOOTBALL (in game) "]
    assert len({normalise(s) for s in spellings}) == 1
    assert normalise("Putting [something] on [something]") == normalise("Putting something on something")


def test_json_report(data, tmp_path, capsys):
    path = write_mmaction(tmp_path, data["paths"][:2], data["classes400"][:2])
    code, out, _ = in_process(capsys, MODEL, "--data", str(path), "--views", "single", "--workers", "0", "--device",
                              "cpu", "--json", *cli_sets(400))
    assert code == 0
    report = json.loads(out)
    assert report["metrics"]["scored"] == 2 and report["throughput"]["clips"] == 2
    assert set(report["metrics"]) >= {"top1", "top5", "mean_class_accuracy", "per_class", "confusion"}


def test_merge_takes_rows_sent_by_ranks_on_other_machines(tmp_path):
    """Rank 0 merges its file, the shards it sees and the rows other ranks sent: one row per clip, in the
    dataset's order, a row without an error preferred, the shards it saw removed."""
    header = {"model": MODEL, "views": [1, 1]}
    out = tmp_path / "r.jsonl"
    row = lambda path, error=None: {"path": path, "label": "x", "target": 0, "error": error,  # noqa: E731
                                    "top5": None if error else [{"label": "x", "index": 0, "probability": 1.0}]}
    with results.open_rows(results.shard_path(out, 0), header) as handle:
        results.write_row(handle, row("c"))
        results.write_row(handle, row("a", "broken"))
    merged = results.merge(out, header, ["a", "b", "c"], sent=[row("b"), row("a")])
    assert [(r["path"], r["error"]) for r in merged] == [("a", None), ("b", None), ("c", None)]
    assert results.read_results(out) == (header, merged)
    assert not results.shard_path(out, 0).exists()


def test_labels_file_names_a_nameless_checkpoint(data, tmp_path):
    """A model without class names (3 classes: ``class 0``…) matched by name through ``labels=FILE``."""
    names = ["Pouring water", "opening_door", "waving"]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    root = write_folders(tmp_path / "data", data["paths"][:4], ["opening door", "waving", "waving", "pouring water"])
    with pytest.raises(vac.ConfigError, match="3 dataset label.*map to no class of the model .by index."):
        vac.evaluate(MODEL, root, overrides=overrides(3), views="single", device="cpu", workers=0)
    result = vac.evaluate(MODEL, root, overrides=overrides(3), views="single", device="cpu", workers=0,
                          labels=tmp_path / "classes.txt")
    assert result.header["match"] == "by name" and result.header["labels"] == names
    assert [r["target"] for r in result.rows] == [1, 0, 2, 2]  # folders in name order: opening, pouring, waving
    assert {p["label"] for r in result.rows for p in r["top5"]} <= set(names)
    with pytest.raises(vac.ConfigError, match="names 3 classes; the model has 4"):
        vac.evaluate(MODEL, root, overrides=overrides(4), labels=tmp_path / "classes.txt", device="cpu")
