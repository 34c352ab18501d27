"""The checkpoint loader: safe reading, layout detection, and messages that say what does not fit."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

import videoattn_core as vac

SMALL = dict(embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32, patch_size=8, num_classes=10)


def _model(**overrides):
    return vac.build_model("timesformer_base", **{**SMALL, **overrides})


def test_plain_state_dict_and_ddp_prefix_and_bytes(tmp_path):
    source = _model()
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "a.pth")
    target = _model()
    report = vac.load_checkpoint(target, tmp_path / "a.pth")
    assert report.layout == "native" and report.tensors == len(source.state_dict())
    assert torch.equal(target.head.weight, source.head.weight)

    save_file(source.state_dict(), str(tmp_path / "b.safetensors"))
    for data in ((tmp_path / "a.pth").read_bytes(), (tmp_path / "b.safetensors").read_bytes()):
        other = _model()
        vac.load_checkpoint(other, data)
        assert torch.equal(other.pos_embed, source.pos_embed)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f, protocol=2)
    torch.save({"weights": torch.zeros(2), "payload": _Evil()}, tmp_path / "evil2.pth")
    with pytest.raises(vac.CheckpointError, match="refused|not a readable"):
        vac.load_checkpoint(_model(), path)
    with pytest.raises(vac.CheckpointError, match="refused: it asks to import print"):
        vac.load_checkpoint(_model(), tmp_path / "evil2.pth")
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("content, words", [
    (b"", "not a readable checkpoint"),
    (b"hello, I am a text file", "not a readable checkpoint"),
    (b"PK\x03\x04garbage", "not a readable checkpoint"),
    (b"\x00\x00\x00\x18ftypisom" + bytes(200), "not a readable checkpoint"),  # an MP4 file
])
def test_not_a_checkpoint(tmp_path, content, words):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(vac.CheckpointError, match=words):
        vac.load_checkpoint(_model(), path)


def test_corrupt_safetensors_and_missing_file(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(vac.CheckpointError, match="safetensors"):
        vac.load_checkpoint(_model(), tmp_path / "x.safetensors")
    with pytest.raises(vac.CheckpointError, match="does not exist"):
        vac.load_checkpoint(_model(), tmp_path / "nope.pth")
    with pytest.raises(vac.CheckpointError, match="without model.safetensors"):
        vac.load_checkpoint(_model(), tmp_path)


def test_non_tensor_content(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(vac.CheckpointError, match="not a dict of named tensors"):
        vac.load_checkpoint(_model(), tmp_path / "list.pth")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(vac.CheckpointError, match="no named tensors"):
        vac.load_checkpoint(_model(), tmp_path / "empty.pth")


def test_mismatch_lists_missing_unexpected_and_wrong_shapes_with_layout_and_hint():
    source = _model(num_classes=7).state_dict()
    del source["norm.weight"]
    source["extra.thing"] = torch.zeros(3)
    with pytest.raises(vac.CheckpointError) as info:
        vac.load_checkpoint(_model(), source)
    text = str(info.value)
    assert "detected layout: native" in text
    assert "missing 1: norm.weight" in text
    assert "unexpected 1: extra.thing" in text
    assert "head.weight checkpoint (7, 64) vs model (10, 64)" in text
    assert "num_classes=7" in text


def test_hf_checkpoint_for_another_attention_type_says_so():
    joint = _model(attention_type="joint_space_time").state_dict()
    hf = {"timesformer.encoder.layer.0.attention.attention.qkv.weight": joint["blocks.0.attn.qkv.weight"],
          "classifier.weight": joint["head.weight"]}
    with pytest.raises(vac.CheckpointError, match="detected layout: Hugging Face"):
        vac.load_checkpoint(_model(), hf)
    space_only = _model(attention_type="space_only").state_dict()
    with pytest.raises(vac.CheckpointError, match="attention_type='space_only'"):
        vac.load_checkpoint(_model(), space_only)


def test_long_key_lists_are_cut_short():
    with pytest.raises(vac.CheckpointError, match=r"more\)"):
        vac.load_checkpoint(_model(), {"a.b": torch.zeros(1)})
