"""Predictions end to end on a sample clip, and every bad input through the command line: exit status 1 or 2,
one or two ``error:`` lines, no traceback, nothing executed from a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import videoattn_core as vac
from clips import write_audio
from videoattn_core.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "assets" / "moving_square.mp4"
TINY = dict(embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32, patch_size=8, num_classes=10)
TINY_SET = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = vac.build_model("timesformer_base", **TINY)
    with torch.no_grad():  # a head that clearly prefers class 7 whatever the input
        model.head.bias.copy_(torch.arange(10.0) * 0 + torch.nn.functional.one_hot(torch.tensor(7), 10) * 20)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(model.state_dict(), path)
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_clean_error(code: int, err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code in (1, 2), err
    assert 1 <= len(lines) <= 2 and all(line.startswith("error: ") for line in lines), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# ------------------------------------------------------------------------------------------------ API


def test_predict_with_a_checkpoint_written_by_the_test(tiny_checkpoint):
    result = vac.predict("timesformer_base", CLIP, checkpoint=tiny_checkpoint, top_k=3, device="cpu",
                         overrides={k: v for k, v in TINY.items()})
    assert not result.random_init and result.weights == str(tiny_checkpoint)
    assert [p["index"] for p in result.predictions][0] == 7 and len(result.predictions) == 3
    probs = [p["probability"] for p in result.predictions]
    assert probs == sorted(probs, reverse=True) and 0.99 < probs[0] <= 1.0
    assert result.predictions[0]["label"] == "class 7" and result.labels_from == "class indices"
    assert result.clip["num_frames"] == 250 and len(result.clip["sampled_indices"]) == 4
    assert result.recipe["num_frames"] == 4 and result.recipe["crop"] == 32 and result.recipe["sampling_rate"] == 32
    # the clip went through the preset's recipe, adapted to the tiny model's input
    model = vac.build_model("timesformer_base", **TINY)
    vac.load_checkpoint(model, tiny_checkpoint)
    config = vac.get_config("timesformer_base", **TINY)
    with torch.no_grad():
        expected = model(vac.load_clip(CLIP, "timesformer_base", config=config).tensor).softmax(-1)[0]
    assert probs[0] == pytest.approx(float(expected[7]), abs=1e-6)


def test_hugging_face_directory_brings_its_labels_and_config(tiny_checkpoint, tmp_path):
    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "pytorch_model.bin").write_bytes(tiny_checkpoint.read_bytes())
    config = {"model_type": "timesformer", "image_size": 32, "patch_size": 8, "num_frames": 4, "hidden_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
              "id2label": {str(i): f"action {i}" for i in range(10)}}
    (directory / "config.json").write_text(json.dumps(config))
    result = vac.predict("timesformer_base", CLIP, checkpoint=directory, device="cpu")  # no overrides needed
    top = result.predictions[0]
    assert (top["label"], top["index"]) == ("action 7", 7) and top["probability"] > 0.99
    assert result.labels_from == "checkpoint config.json (id2label)"
    assert result.config_overrides["embed_dim"] == 64


def test_random_initialisation_says_so():
    result = vac.predict("timesformer_base", CLIP, device="cpu", overrides={"depth": 1})
    assert result.random_init and result.weights is None
    assert "mean nothing" in result.to_dict()["warning"]
    assert result.labels_from == "assets label list (kinetics400)" and len(result.predictions) == 5


def test_bfloat16_runs_and_says_when_this_machine_only_emulates_it(capsys, monkeypatch):
    from videoattn_core.run import devices

    native = vac.predict("timesformer_base", CLIP, device="cpu", overrides=TINY, dtype="bfloat16")
    if devices.native_bfloat16("cpu"):  # AMX or AVX-512 BF16 here: nothing to warn about
        assert not any("bfloat16" in w for w in native.warnings)
    float32 = vac.predict("timesformer_base", CLIP, device="cpu", overrides=TINY)
    assert [p["index"] for p in native.predictions] and native.probabilities != float32.probabilities

    monkeypatch.setattr(devices, "native_bfloat16", lambda device: False)
    emulated = vac.predict("timesformer_base", CLIP, device="cpu", overrides=TINY, dtype="bfloat16")
    assert any("has no bfloat16 arithmetic" in w and "slower than float32" in w for w in emulated.warnings)
    assert not any("bfloat16" in w for w in vac.predict("timesformer_base", CLIP, device="cpu",
                                                        overrides=TINY).warnings)
    code, out, _ = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--dtype", "bfloat16", *TINY_SET)
    assert code == 0 and "note: this cpu has no bfloat16 arithmetic" in out


# ------------------------------------------------------------------------------------------------ command line


def test_cli_prints_top_k_and_json(tiny_checkpoint, capsys):
    code, out, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint",
                          str(tiny_checkpoint), "--top-k", "2", "--device", "cpu", *TINY_SET)
    assert code == 0 and err == ""
    assert " 1. class 7" in out and " 2. " in out and " 3. " not in out
    code, out, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint",
                          str(tiny_checkpoint), "--json", "--device", "cpu", *TINY_SET)
    data = json.loads(out)
    assert code == 0 and data["random_init"] is False and data["warning"] is None
    assert [set(p) for p in data["predictions"]] == [{"label", "index", "probability"}] * 5
    assert data["predictions"][0]["index"] == 7


def test_cli_without_weights_warns_loudly(capsys):
    code, out, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--json", "--set", "depth=1")
    assert code == 0 and "WARNING" in err and "randomly initialised" in err and "mean nothing" in err
    data = json.loads(out)
    assert data["random_init"] is True and "mean nothing" in data["warning"] and len(data["predictions"]) == 5
    code, out, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--set", "depth=1")
    assert code == 0 and out.startswith("!! random initialisation")


@pytest.fixture(scope="module")
def bad_clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.txt").write_text("not a video\n" * 10)
    (d / "noise.mp4").write_bytes(os.urandom(5000))
    data = CLIP.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_audio(d / "tone.wav")
    return {p.stem: p for p in d.iterdir()}


@pytest.mark.parametrize("name,fragment", [
    ("empty", "is empty (0 bytes)"),
    ("notes", "is not a video FFmpeg can read"),
    ("noise", "is not a video FFmpeg can read"),
    ("truncated", "is not a video FFmpeg can read"),
    ("tone", "has no video stream: it is audio only"),
])
def test_cli_bad_clips(bad_clips, capsys, tiny_checkpoint, name, fragment):
    code, out, err = _run(capsys, "predict", "timesformer_base", "--clip", str(bad_clips[name]), "--checkpoint",
                          str(tiny_checkpoint), *TINY_SET)
    _assert_clean_error(code, err, fragment, *(("expected",) if name != "truncated" else ()))
    assert out == ""


def test_cli_missing_clip(capsys, tmp_path):
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(tmp_path / "none.mp4"))
    _assert_clean_error(code, err, "none.mp4 does not exist")


def test_cli_checkpoint_that_is_not_a_checkpoint(capsys, tmp_path):
    (tmp_path / "weights.pth").write_text("hello")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint",
                        str(tmp_path / "weights.pth"))
    _assert_clean_error(code, err, "is not a readable checkpoint")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint", str(CLIP))
    _assert_clean_error(code, err, "moving_square.mp4")  # a video passed as checkpoint: refused, one line


@pytest.mark.slow
def test_cli_checkpoint_for_another_model(capsys, tmp_path, tiny_checkpoint):
    # a tiny TimeSformer checkpoint loaded into the full preset, and into another family
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint",
                        str(tiny_checkpoint))
    _assert_clean_error(code, err, "does not fit TimeSformer", "wrong shape")
    other = vac.build_model("timesformer_base", **{**TINY, "depth": 3})
    torch.save(other.state_dict(), tmp_path / "deeper.pth")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint",
                        str(tmp_path / "deeper.pth"), *TINY_SET)
    _assert_clean_error(code, err, "unexpected", "blocks.2")
    code, _, err = _run(capsys, "predict", "mvit_v2_s", "--clip", str(CLIP), "--checkpoint", str(tiny_checkpoint))
    _assert_clean_error(code, err, "does not fit")


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: a checkpoint that tries to run code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_cli_checkpoint_that_tries_to_run_code_is_refused_unexecuted(capsys, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model_state": {"w": torch.zeros(1)}, "payload": _Payload(str(marker))}, tmp_path / "evil.pth")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--checkpoint",
                        str(tmp_path / "evil.pth"))
    _assert_clean_error(code, err, "was refused", "could run code")
    assert not marker.exists()


def test_cli_bad_arguments(capsys, tiny_checkpoint):
    code, _, err = _run(capsys, "predict", "no_such_model", "--clip", str(CLIP))
    _assert_clean_error(code, err, "unknown model 'no_such_model'")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--weights", "nope.k400")
    _assert_clean_error(code, err, "unknown weights 'nope.k400'")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--weights",
                        "mvit_v2_s.torchvision_k400")
    _assert_clean_error(code, err, "are for mvit_v2_s, not timesformer_base")
    code, _, err = _run(capsys, "predict", "fiery_temporal", "--clip", str(CLIP))
    _assert_clean_error(code, err, "no classification head")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--set", "depth=zero")
    _assert_clean_error(code, err, "depth='zero' is not allowed")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--top-k", "0")
    _assert_clean_error(code, err, "top_k=0 is not allowed")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--weights", "x",
                        "--checkpoint", str(tiny_checkpoint))
    _assert_clean_error(code, err, "not allowed with argument")
    code, _, err = _run(capsys, "predict", "timesformer_base", "--clip", str(CLIP), "--device", "cuda",
                        "--set", "depth=1")
    if torch.cuda.is_available():
        assert code == 0
    else:
        _assert_clean_error(code, err, "CUDA is not available")


def test_weights_hosted_where_no_direct_download_exists_say_where_to_put_them(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = _run(capsys, "predict", "mvit_v1_b", "--clip", str(CLIP), "--weights", "mvit_v1_b.official_k400")
    _assert_clean_error(code, err, "cannot be downloaded automatically", str(tmp_path / "torch"))


def test_weights_without_network_end_in_one_error_line(capsys, tmp_path, monkeypatch):
    """The download really tries the network (a closed port on 127.0.0.1) and ends in one line naming the URL and
    the path where the file can be placed by hand."""
    import socket
    from dataclasses import replace

    from videoattn_core.weights import lookup as W

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = f"http://127.0.0.1:{port}/models/mvit_v2_s-ae3be167.pth"
    entry = replace(W.CATALOG["mvit_v2_s.torchvision_k400"], url=url)
    monkeypatch.setitem(W.CATALOG, entry.name, entry)
    code, _, err = _run(capsys, "predict", "mvit_v2_s", "--clip", str(CLIP), "--weights", entry.name)
    _assert_clean_error(code, err, "cannot reach", url, str(tmp_path / "torch"))


@pytest.mark.slow
def test_python_m_entry_point(tiny_checkpoint):
    """The real command, in a fresh interpreter: output and exit status as a user sees them."""
    cmd = [sys.executable, "-m", "videoattn_core", "predict", "timesformer_base", "--clip", str(CLIP),
           "--checkpoint", str(tiny_checkpoint), "--json", "--device", "cpu", *TINY_SET]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"][0]["index"] == 7
    bad = subprocess.run(cmd[:5] + ["--clip", str(ROOT / "README.md")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
