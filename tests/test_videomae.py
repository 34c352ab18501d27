"""VideoMAE: parity with Hugging Face's VideoMAEForVideoClassification (the fixture), the official checkpoint
layout, the transformers ≥ 5 names, other seeds and sizes, costs, attention views, catalog and the app page."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import videoattn_core as vac
from reference import Reference, assert_both_paths_match, relative_error
from videoattn_core.attention.maps import capture_all, rollout, rollout_unavailable_reason
from videoattn_core.models.videomae import hf_config_overrides

# ------------------------------------------------------------------------------------------ checkpoint layouts
# The names MCG-NJU/VideoMAE's fine-tuning VisionTransformer (modeling_finetune.py, use_mean_pooling=True,
# qkv_bias=True, fixed sin-cos positions, which are not saved) puts in its state dict, written out from that
# module's structure, with ViT-B/16 shapes (C = 768, 400 classes). Checkpoints carry them under "model" or
# "module" (run_class_finetuning.py --model_key model|module).

C, CLASSES, DEPTH = 768, 400, 12
OFFICIAL_BLOCK = [  # blocks.{i}.<name>
    ("norm1.weight", (C,)), ("norm1.bias", (C,)),
    ("attn.q_bias", (C,)), ("attn.v_bias", (C,)), ("attn.qkv.weight", (3 * C, C)),
    ("attn.proj.weight", (C, C)), ("attn.proj.bias", (C,)),
    ("norm2.weight", (C,)), ("norm2.bias", (C,)),
    ("mlp.fc1.weight", (4 * C, C)), ("mlp.fc1.bias", (4 * C,)),
    ("mlp.fc2.weight", (C, 4 * C)), ("mlp.fc2.bias", (C,)),
]
OFFICIAL_KEYS = ([("patch_embed.proj.weight", (C, 3, 2, 16, 16)), ("patch_embed.proj.bias", (C,))]
                 + [(f"blocks.{i}.{n}", s) for i in range(DEPTH) for n, s in OFFICIAL_BLOCK]
                 + [("fc_norm.weight", (C,)), ("fc_norm.bias", (C,)), ("head.weight", (CLASSES, C)),
                    ("head.bias", (CLASSES,))])

# How Hugging Face's conversion (convert_videomae_to_pytorch.py) renamed each official name, inverted here so the
# fixture's weights can be written in the official layout: HF sub-name -> official sub-name, per block.
HF_TO_OFFICIAL_BLOCK = {
    "layernorm_before": "norm1", "attention.attention.q_bias": "attn.q_bias",
    "attention.attention.v_bias": "attn.v_bias", "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
}


def official_state(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fixture's Hugging Face state dict written with the official names (query/key/value stacked)."""
    out = {"patch_embed.proj.weight": hf["videomae.embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": hf["videomae.embeddings.patch_embeddings.projection.bias"],
           "fc_norm.weight": hf["fc_norm.weight"], "fc_norm.bias": hf["fc_norm.bias"],
           "head.weight": hf["classifier.weight"], "head.bias": hf["classifier.bias"]}
    for i in range(DEPTH):
        p = f"videomae.encoder.layer.{i}."
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat(
            [hf[p + f"attention.attention.{n}.weight"] for n in ("query", "key", "value")])
        for theirs, ours in HF_TO_OFFICIAL_BLOCK.items():
            for suffix in ("", ".weight", ".bias"):
                if p + theirs + suffix in hf:
                    out[f"blocks.{i}.{ours}{suffix}"] = hf[p + theirs + suffix]
    return out


def transformers5_state(hf: dict[str, torch.Tensor], key_bias: bool = True) -> dict[str, torch.Tensor]:
    """What a transformers ≥ 5 model saves: q_bias/v_bias as query.bias/value.bias (and a key.bias)."""
    out = {}
    for name, value in hf.items():
        out[name.replace("attention.attention.q_bias", "attention.attention.query.bias")
                .replace("attention.attention.v_bias", "attention.attention.value.bias")] = value
        if key_bias and name.endswith("attention.attention.q_bias"):
            out[name.replace("q_bias", "key.bias")] = torch.randn_like(value)  # cancelled by the softmax
    return out


# ----------------------------------------------------------------- an independent transcription of the HF model

def hf_forward(state: dict[str, torch.Tensor], hf_config: dict, x: torch.Tensor) -> torch.Tensor:
    """Hugging Face ``VideoMAEForVideoClassification`` (eager attention) written out on its own key names:
    separate query/key/value projections with q/v biases, ``layer_norm_eps`` in the blocks, ``fc_norm`` with
    PyTorch's default 1e-5, the sin-cos table computed with numpy as the original does."""
    eps, heads = hf_config["layer_norm_eps"], hf_config["num_attention_heads"]
    w = state["videomae.embeddings.patch_embeddings.projection.weight"]
    h = F.conv3d(x, w, state["videomae.embeddings.patch_embeddings.projection.bias"], stride=w.shape[2:])
    h = h.flatten(2).transpose(1, 2)  # (B, N, C)
    b, n, c = h.shape
    angles = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(c) // 2) / c)[None, :]
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    h = h + torch.tensor(angles, dtype=torch.float32)
    d = c // heads
    for i in range(hf_config["num_hidden_layers"]):
        p = f"videomae.encoder.layer.{i}."
        y = F.layer_norm(h, (c,), state[p + "layernorm_before.weight"], state[p + "layernorm_before.bias"], eps)
        a = p + "attention.attention."
        q = F.linear(y, state[a + "query.weight"], state[a + "q_bias"]).view(b, n, heads, d).transpose(1, 2)
        k = F.linear(y, state[a + "key.weight"]).view(b, n, heads, d).transpose(1, 2)
        v = F.linear(y, state[a + "value.weight"], state[a + "v_bias"]).view(b, n, heads, d).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, n, c)
        h = h + F.linear(ctx, state[p + "attention.output.dense.weight"], state[p + "attention.output.dense.bias"])
        y = F.layer_norm(h, (c,), state[p + "layernorm_after.weight"], state[p + "layernorm_after.bias"], eps)
        y = F.gelu(F.linear(y, state[p + "intermediate.dense.weight"], state[p + "intermediate.dense.bias"]))
        h = h + F.linear(y, state[p + "output.dense.weight"], state[p + "output.dense.bias"])
    if hf_config["use_mean_pooling"]:
        feature = F.layer_norm(h.mean(1), (c,), state["fc_norm.weight"], state["fc_norm.bias"], 1e-5)
    else:
        feature = F.layer_norm(h, (c,), state["videomae.layernorm.weight"], state["videomae.layernorm.bias"],
                               eps)[:, 0]
    return F.linear(feature, state["classifier.weight"], state["classifier.bias"])


# ---------------------------------------------------------------------------------------------------- parity

@pytest.fixture(scope="module")
def ref():
    return Reference("videomae_base")


@pytest.fixture(scope="module")
def hf_state(ref):
    return ref.state_dict()


def _hf_model(ref):
    return vac.build_model("videomae_base", **hf_config_overrides(ref.meta["hf_config"]))


@pytest.mark.slow
def test_logits_match_reference_from_a_hugging_face_directory(ref, hf_state, tmp_path):
    save_file(hf_state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(ref.meta["hf_config"]))
    report_config = vac.read_checkpoint(tmp_path)[2]["config"]
    model = vac.build_model("videomae_base", **hf_config_overrides(report_config))
    assert (model.config.norm_eps, model.config.fc_norm_eps) == (1e-12, 1e-5)
    assert sum(p.numel() for p in model.parameters()) == ref.params == 86_534_800
    report = vac.load_checkpoint(model, tmp_path)
    assert report.layout == "Hugging Face (VideoMAEForVideoClassification)"
    assert_both_paths_match(model, ref)


@pytest.mark.slow
def test_logits_match_reference_from_the_official_layout(ref, hf_state, tmp_path):
    official = official_state(hf_state)
    assert len(official) == len(OFFICIAL_KEYS) == 2 + 13 * DEPTH + 4
    assert {(k, tuple(v.shape)) for k, v in official.items()} == set(OFFICIAL_KEYS)
    torch.save({"module": official, "epoch": 74}, tmp_path / "mp_rank_00_model_states.pt")  # DeepSpeed runs
    torch.save({"model": official, "epoch": 74}, tmp_path / "checkpoint-best.pth")  # torch.amp runs
    model = _hf_model(ref)
    assert vac.load_checkpoint(model, tmp_path / "mp_rank_00_model_states.pt").layout == "native"
    with torch.no_grad():
        assert relative_error(model(ref.input()), ref.logits) <= 1e-4
    other = _hf_model(ref)
    vac.load_checkpoint(other, tmp_path / "checkpoint-best.pth")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


@pytest.mark.slow
def test_logits_match_reference_from_a_transformers5_state_dict(ref, hf_state):
    state = transformers5_state(hf_state)
    assert "videomae.encoder.layer.3.attention.attention.query.bias" in state
    assert not any(k.endswith(("q_bias", "v_bias")) for k in state)
    model = _hf_model(ref)
    assert vac.load_checkpoint(model, state).layout.startswith("Hugging Face")
    torch.testing.assert_close(model.blocks[3].attn.v_bias,
                               state["videomae.encoder.layer.3.attention.attention.value.bias"])
    with torch.no_grad():
        assert relative_error(model(ref.input()), ref.logits) <= 1e-4


@pytest.mark.slow
def test_second_weight_seed_against_the_transcription(ref, hf_state):
    """The transcription of the HF model reproduces the fixture, then stands in for it at another seed (on an
    8-frame 112 px clip, which both take with the position table of that token count, to keep the test short)."""
    cfg = ref.meta["hf_config"]
    with torch.no_grad():
        assert relative_error(hf_forward(hf_state, cfg, ref.input()), ref.logits) <= 1e-5
        state = ref.state_dict(weight_seed=2)
        x = torch.randn(1, 3, 8, 112, 112, generator=torch.Generator().manual_seed(5))
        expected = hf_forward(state, cfg, x)
        model = _hf_model(ref)
        vac.load_checkpoint(model, state)
        ours = relative_error(model(x), expected)
        assert ours <= 1e-4
        # the official epsilons are a different network: measurably further from Hugging Face's logits
        official_eps = vac.build_model("videomae_base")
        vac.load_checkpoint(official_eps, state)
        assert relative_error(official_eps(x), expected) > 5 * ours


def _small_hf(use_mean_pooling=True, depth=2, classes=7):
    """A reduced Hugging Face config and seeded weights in its on-disk layout."""
    cfg = {"model_type": "videomae", "image_size": 32, "patch_size": 8, "num_channels": 3, "num_frames": 4,
           "tubelet_size": 2, "hidden_size": 48, "num_hidden_layers": depth, "num_attention_heads": 4,
           "intermediate_size": 192, "layer_norm_eps": 1e-12, "qkv_bias": True,
           "use_mean_pooling": use_mean_pooling, "num_labels": classes}
    g = torch.Generator().manual_seed(3)
    c = 48
    state = {"videomae.embeddings.patch_embeddings.projection.weight": torch.randn(c, 3, 2, 8, 8, generator=g) * .1,
             "videomae.embeddings.patch_embeddings.projection.bias": torch.randn(c, generator=g) * .1,
             "classifier.weight": torch.randn(classes, c, generator=g) * .1,
             "classifier.bias": torch.randn(classes, generator=g) * .1}
    norm = "fc_norm" if use_mean_pooling else "videomae.layernorm"
    state[f"{norm}.weight"] = 1 + torch.randn(c, generator=g) * .1
    state[f"{norm}.bias"] = torch.randn(c, generator=g) * .1
    for i in range(depth):
        p = f"videomae.encoder.layer.{i}."
        shapes = {"attention.attention.query.weight": (c, c), "attention.attention.key.weight": (c, c),
                  "attention.attention.value.weight": (c, c), "attention.attention.q_bias": (c,),
                  "attention.attention.v_bias": (c,), "attention.output.dense.weight": (c, c),
                  "attention.output.dense.bias": (c,), "intermediate.dense.weight": (4 * c, c),
                  "intermediate.dense.bias": (4 * c,), "output.dense.weight": (c, 4 * c), "output.dense.bias": (c,),
                  "layernorm_before.weight": (c,), "layernorm_before.bias": (c,), "layernorm_after.weight": (c,),
                  "layernorm_after.bias": (c,)}
        for name, shape in shapes.items():
            w = torch.randn(shape, generator=g) * 0.1
            state[p + name] = w + 1 if name.endswith("norm_before.weight") or name.endswith("after.weight") else w
    return cfg, state


@pytest.mark.parametrize("use_mean_pooling", [True, False])
def test_reduced_configs_match_the_transcription_on_both_paths(use_mean_pooling):
    cfg, state = _small_hf(use_mean_pooling)
    model = vac.build_model("videomae_base", **hf_config_overrides(cfg))
    assert model.config.use_mean_pooling is use_mean_pooling and model.config.num_classes == 7
    vac.load_checkpoint(model, state)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = hf_forward(state, cfg, x)
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    assert relative_error(fused, expected) <= 1e-5 and relative_error(explicit, expected) <= 1e-5


def test_other_input_sizes_equal_a_model_built_for_them():
    cfg, state = _small_hf()
    x = torch.randn(1, 3, 8, 48, 40)  # 4×6×5 tubelets instead of 2×4×4
    small = vac.build_model("videomae_base", **hf_config_overrides(cfg))
    vac.load_checkpoint(small, state)
    big = vac.build_model("videomae_base", **{**hf_config_overrides(cfg), "num_frames": 8, "img_size": 48})
    vac.load_checkpoint(big, state)
    with torch.no_grad():
        assert big.pos_embed.shape == (1, 4 * 6 * 6, 48)
        torch.testing.assert_close(small._pos_embed(4 * 6 * 5), big.pos_embed[:, :4 * 6 * 5])
        expected = hf_forward(state, cfg, x)
        torch.testing.assert_close(small(x), expected, rtol=1e-4, atol=1e-5)


def test_sinusoid_table_is_the_official_one():
    from videoattn_core.models.videomae import sinusoid_table
    n, c = 50, 24
    angles = np.array([[pos / np.power(10000, 2 * (j // 2) / c) for j in range(c)] for pos in range(n)])
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    assert torch.equal(sinusoid_table(n, c), torch.tensor(angles, dtype=torch.float32))


def test_hf_config_overrides():
    ref = json.loads((Reference("videomae_base").dir / "meta.json").read_text())["hf_config"]
    out = hf_config_overrides(ref)
    assert out == {"img_size": 224, "patch_size": 16, "in_chans": 3, "num_frames": 16, "tubelet_size": 2,
                   "embed_dim": 768, "depth": 12, "num_heads": 12, "qkv_bias": True, "use_mean_pooling": True,
                   "norm_eps": 1e-12, "fc_norm_eps": 1e-5, "mlp_ratio": 4.0, "num_classes": 400}
    labels = {str(i): f"c{i}" for i in range(174)}
    assert hf_config_overrides({"model_type": "videomae", "id2label": labels})["num_classes"] == 174
    assert hf_config_overrides({"model_type": "vivit", "hidden_size": 3}) == {}
    assert hf_config_overrides(None) == {}


# ------------------------------------------------------------------------------------------- configs, errors

@pytest.mark.parametrize("overrides, field, words", [
    (dict(embed_dim=100, num_heads=12), "num_heads", "not divisible by num_heads"),
    (dict(img_size=230), "img_size", "multiple of patch_size"),
    (dict(num_frames=15), "num_frames", "multiple of tubelet_size"),
    (dict(tubelet_size=0), "tubelet_size", "from 1"),
    (dict(norm_eps=-1.0), "norm_eps", "from 0.0"),
    (dict(use_mean_pooling="yes"), "use_mean_pooling", "true or false"),
])
def test_impossible_configs_raise_config_error(overrides, field, words):
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model("videomae_base", device="meta", **overrides)
    assert info.value.field == field and words in str(info.value)


def test_mismatching_checkpoint_gets_a_hint():
    cfg, state = _small_hf(classes=174)
    model = vac.build_model("videomae_base", **{**hf_config_overrides(cfg), "num_classes": 400, "depth": 3})
    with pytest.raises(vac.CheckpointError, match=r"fits a model built with num_classes=174, depth=2 "):
        vac.load_checkpoint(model, state)


@pytest.mark.parametrize("shape", [(1, 3, 5, 32, 32), (1, 3, 4, 30, 32), (1, 1, 4, 32, 32)])
def test_wrong_input_shape_says_what_is_expected(shape):
    model = vac.build_model("videomae_base", embed_dim=48, depth=1, num_heads=4, num_frames=4, img_size=32,
                            patch_size=8)
    with pytest.raises(ValueError, match=r"expected a float tensor \(B, C, T, H, W\) with C=3, T a multiple of 2"):
        model(torch.randn(*shape))


# ------------------------------------------------------------------------------------------------- costs

def test_published_parameter_counts_and_macs():
    # ../shared/reference/README.md: fvcore on the HF model with eager attention, 45.32 G of them attention matmuls
    s = vac.summarize("videomae_base")
    assert s.params == 86_534_800
    assert s.macs / 1e9 == pytest.approx(180.49, rel=0.01)
    cores = [r for r in s.layers if r.type == "AttentionCore"]
    assert sum(r.macs for r in cores) / 1e9 == pytest.approx(45.32, rel=0.001)
    assert all(r.attention_kind == "joint" and r.layout == "B heads (T·H·W) d" for r in cores)
    assert s.views == 15  # 5 clips × 3 crops: the paper's "180 × 5 × 3"
    # Tong et al. 2022, Table 6 (Kinetics-400): GFLOPs per view of ViT-S/L/H
    for preset, gmacs in (("videomae_s", 57), ("videomae_l", 597), ("videomae_h", 1192)):
        assert vac.summarize(preset).macs / 1e9 == pytest.approx(gmacs, rel=0.005), preset


def test_analytic_macs_equal_the_flop_counter_per_module():
    model = vac.build_model("videomae_base", embed_dim=48, depth=2, num_heads=4, num_frames=4, img_size=32,
                            patch_size=8, num_classes=5)
    x = torch.randn(2, 3, 4, 32, 32)
    result = vac.inspect(model, x, ["blocks.1.attn"])
    assert result.macs == vac.summarize(model, batch=2).macs
    for rec in result.layers:
        if rec.calls and rec.is_leaf and rec.type in ("Linear", "Conv3d", "AttentionCore"):
            assert rec.measured_macs == rec.macs > 0, rec.name
    probs = result.attention["blocks.1.attn"].probs
    assert probs.shape == (2, 4, 32, 32)  # (B, heads, T'·H'·W', T'·H'·W'): no CLS token


# ----------------------------------------------------------------------------------------- attention views

def _tiny(use_mean_pooling=True, depth=3):
    return vac.build_model("videomae_base", embed_dim=32, depth=depth, num_heads=2, num_frames=4, img_size=24,
                           patch_size=8, num_classes=5, use_mean_pooling=use_mean_pooling)


@pytest.mark.parametrize("use_mean_pooling", [True, False])
def test_rollout_from_the_token_the_classifier_reads(use_mean_pooling):
    """Rollout over N = 2·3·3 tokens equals the product of dense ½I + ½Ā matrices started from the mean-pooled
    row (1/N each) or from the first token."""
    model = _tiny(use_mean_pooling)
    x = torch.randn(1, 3, 4, 24, 24)
    assert rollout_unavailable_reason(model) is None
    n = 2 * 3 * 3
    row = torch.full((n,), 1.0 / n, dtype=torch.float64) if use_mean_pooling else torch.eye(n, dtype=torch.float64)[0]
    for captured in reversed(capture_all(model, x)):
        mixed = 0.5 * torch.eye(n, dtype=torch.float64) + 0.5 * captured.probs[0].double().mean(0)
        row = row @ mixed
    ours = rollout(model, x)
    assert ours.shape == (2, 3, 3) and abs(ours.sum() - 1) < 1e-5
    np.testing.assert_allclose(ours, (row / row.sum()).reshape(2, 3, 3).numpy(), rtol=1e-5, atol=1e-7)


def test_rollout_without_cls_or_readout_says_why(monkeypatch):
    from dataclasses import replace

    from videoattn_core import registry

    model = _tiny()
    family = registry.family_of(model.config)
    # a family that declares no readout of its own (the default, a CLS token), on a model without one
    monkeypatch.setitem(registry._FAMILIES, "videomae", replace(family, readout=lambda config: "cls"))
    with pytest.raises(ValueError, match="no CLS token and its family does not say which token"):
        rollout(model, torch.randn(1, 3, 4, 24, 24))
    monkeypatch.setitem(registry._FAMILIES, "videomae", replace(family, readout=lambda config: "max"))
    assert "reads 'max'" in rollout_unavailable_reason(model)


# --------------------------------------------------------------------------------------------------- catalog

def test_catalog_entries_carry_the_published_protocols():
    entries = {e.name: e for e in vac.list_weights() if e.preset.startswith("videomae")}
    assert {"videomae_s.hf_k400", "videomae_base.hf_k400", "videomae_l.hf_k400", "videomae_h.hf_k400",
            "videomae_base.hf_ssv2"} <= set(entries)
    for entry in entries.values():
        r = entry.recipe
        assert (r.num_frames, r.crop) == (16, 224)
        assert (r.clips, r.crops) == ((5, 3) if entry.dataset == "kinetics400" else (2, 3))
        assert r.sampling == ("window" if entry.dataset == "kinetics400" else "uniform")
        if entry.source == "huggingface":
            assert r.resampling == "huggingface"
            assert entry.overrides["norm_eps"] == 1e-12 and entry.overrides["fc_norm_eps"] == 1e-5
            assert entry.layout == "Hugging Face (VideoMAEForVideoClassification)"
        else:
            assert not entry.direct and entry.layout.startswith("official") and "num_heads" not in entry.overrides
        config = vac.get_config(entry.preset, **entry.overrides)
        assert config.num_classes == entry.num_classes
    assert entries["videomae_base.hf_ssv2"].num_classes == 174


def test_hub_conversions_quote_the_model_zoo_figures_of_their_checkpoint():
    """Each Hub repository converts one Drive checkpoint of MCG-NJU/VideoMAE's MODEL_ZOO.md, so it scores what
    that checkpoint scores. The ViT-B Kinetics-400 card still prints 80.9/94.7, the zoo's row before commit 2254c5e
    (softmax before the views are averaged); MODEL_ZOO.md has said 81.5/95.1 since commit 2b56a75."""
    pairs = {"videomae_s.hf_k400": "videomae_s.official_k400", "videomae_base.hf_k400": "videomae_base.official_k400",
             "videomae_l.hf_k400": "videomae_l.official_k400", "videomae_h.hf_k400": "videomae_h.official_k400",
             "videomae_base.hf_ssv2": "videomae_base.official_ssv2"}
    for hub, official in pairs.items():
        assert vac.get_entry(hub).metrics == vac.get_entry(official).metrics, hub
    base = vac.get_entry("videomae_base.hf_k400")
    assert base.metrics == {"acc@1": 81.5, "acc@5": 95.1}
    assert "2b56a75" in base.metrics_protocol and "80.9/94.7" in base.metrics_protocol


# ------------------------------------------------------------------------------------------------------- app

def test_model_link_shows_videomae_base():
    from streamlit.testing.v1 import AppTest
    from test_app import APP, assert_clean, metric

    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"model": "videomae_base"})
    at.run()
    assert_clean(at)
    expected = vac.summarize("videomae_base")
    assert metric(at, "parameters") == f"{expected.params:,}"
    assert at.query_params == {"model": "videomae_base"}


def test_attention_page_shows_videomae_rollout():
    from streamlit.testing.v1 import AppTest
    from test_app import APP, assert_clean, charts

    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("pages/attention.py")
    at.query_params.clear()
    at.query_params.update({"model": "videomae_base", "depth": "2", "img_size": "64", "num_frames": "8",
                            "rollout": "on"})
    at.run()
    assert_clean(at)
    assert at.selectbox(key="attention.layer").value == "blocks.1.attn"
    assert not [e.value for e in at.error]
    overlays = [c for c in charts(at) if any(t["type"] == "heatmap" for t in c["data"])
                and any(t["type"] == "image" for t in c["data"])]
    assert overlays and at.query_params["rollout"] == "on"
    titles = [c["layout"].get("title", {}).get("text") or "" for c in overlays]
    assert any("rolled out" in t for t in titles)  # the rollout drew, from the mean-pooled token


def test_run_page_predicts_with_videomae():
    from streamlit.testing.v1 import AppTest
    from test_app import APP, assert_clean, metric

    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("pages/run.py")
    at.query_params.clear()
    at.query_params.update({"model": "videomae_base", "depth": "2", "img_size": "64"})
    at.run()
    assert_clean(at)
    assert metric(at, "analytic MACs") == metric(at, "measured MACs")
