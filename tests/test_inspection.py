"""The inspection engine: published figures, per-module records, measured inspection and attention capture."""

from __future__ import annotations

import json

import pytest
import torch
from einops import rearrange
from torch import nn

import videoattn_core as vac
from videoattn_core.cost.memory import forward_peak_bytes
from videoattn_core.models.layers import AttentionCore
from reference import relative_error

# ------------------------------------------------------------------------------------- published figures
# ../shared/reference/README.md, "Published figures (per view)". params: an exact count, a count in millions
# rounded to one decimal (a paper's "51.2 M"), or None; GMACs with the tolerance the source allows (1% for
# fvcore on the reference implementation, 2% for a paper's rounded figure).


class Millions(float):
    """A parameter count given in millions, rounded to one decimal."""


# The tolerance is half a unit of the published figure's last digit: the figure, rounded, is what we compute, rounded.
FIGURES = [
    # preset, overrides, frames, size, params, GMACs, tolerance (GMACs)
    ("timesformer_base", {}, 8, 224, 121_566_352, 196.05, 0.005),
    ("timesformer_base", {"attention_type": "joint_space_time"}, 8, 224, 86_112_400, 179.71, 0.005),
    ("timesformer_base", {"attention_type": "space_only"}, 8, 224, 86_106_256, 140.65, 0.005),
    ("timesformer_hr", {}, 16, 448, 122_024_080, 1704.5, 0.05),
    # the paper's 7.14 TFLOPs over 3 views: ± 0.005 T / 3. PENDING: we count 2382.53 G, 7.148 T over 3 views, which
    # rounds to 7.15; strict xfail until the difference is explained (it was hidden by a 2 % tolerance)
    pytest.param(("timesformer_l", {}, 96, 224, 121_633_936, 2380, 5 / 3),
                 marks=pytest.mark.xfail(strict=True, reason="7.148 T counted vs 7.14 T published")),
    ("mvit_v1_b", {}, 16, 224, 36_610_672, 70.80, 0.005),
    ("mvit_v1_b_32x3", {}, 32, 224, None, 170.4, 0.05),
    ("mvit_v2_s", {}, 16, 224, 34_537_744, 64.46, 0.005),
    ("mvit_v2_b", {}, 32, 224, Millions(51.2), 225, 0.5),
    ("swin3d_t", {}, 16, 224, 28_158_070, 44.03, 0.005),
    ("swin3d_t", {}, 32, 224, 28_158_070, 88.06, 0.005),
    ("swin3d_s", {}, 16, 224, 49_816_678, 83.06, 0.005),
    ("swin3d_b", {}, 16, 224, 88_048_984, 140.96, 0.005),
    ("swin3d_l", {}, 32, 224, Millions(197.0), 604, 0.5),
    ("vivit_b", {}, 32, 224, 88_954_000, 451.83, 0.005),
    ("videomae_base", {}, 16, 224, 86_534_800, 180.49, 0.005),
    ("videomae_s", {}, 16, 224, None, 57, 0.5),  # Tong et al. 2022, Table 6: 57 / 180 / 597 / 1192 GFLOPs
    ("videomae_l", {}, 16, 224, None, 597, 0.5),
    ("videomae_h", {}, 16, 224, None, 1192, 0.5),
    ("vjepa2_vitl", {}, 16, 256, 375_485_998, 935.83, 0.005),
]


def _figure_id(entry) -> str:
    entry = entry.values[0] if hasattr(entry, "values") else entry
    preset, overrides, frames, size = entry[:4]
    extra = ",".join(f"{k}={v}" for k, v in overrides.items())
    return f"{preset}-{frames}x{size}" + (f"-{extra}" if extra else "")


@pytest.mark.parametrize("entry", FIGURES, ids=[_figure_id(e) for e in FIGURES])
def test_published_figures(entry):
    preset, overrides, frames, size, params, gmacs, tolerance = entry
    if preset not in vac.list_models():
        pytest.fail(f"preset {preset} of the published-figures table is not registered "
                    f"(registered: {', '.join(vac.list_models())})")
    summary = vac.summarize(preset, frames=frames, size=size, **overrides)
    assert summary.input_shape == (1, 3, frames, size, size)
    if isinstance(params, Millions):
        assert round(summary.params / 1e6, 1) == params
    elif params is not None:
        assert summary.params == params
    assert abs(summary.macs / 1e9 - gmacs) <= tolerance
    assert summary.flops == 2 * summary.macs


def test_views_multiplier_reproduces_the_papers_totals():
    summary = vac.summarize("timesformer_base")
    # Bertasius et al.: 0.59 TFLOPs (multiply-adds) × 3 views for TimeSformer 8×224
    assert summary.views == 3
    assert abs(summary.macs_all_views / 1e12 - 0.59) <= 0.005
    assert vac.summarize("timesformer_base", views=1).macs_all_views == summary.macs


@pytest.mark.parametrize("preset", vac.list_models())
def test_every_preset_summarizes_consistently(preset):
    summary = vac.summarize(preset)
    model = vac.build_model(preset, device="meta")
    assert summary.params == sum(p.numel() for p in model.parameters())
    # own counts add up to the totals; the model's record holds the subtree totals
    assert sum(r.params for r in summary.layers) == summary.params
    assert sum(r.macs for r in summary.layers) == summary.macs > 0
    root = summary.layers[0]
    assert root.name == "" and root.depth == 0
    assert (root.params_total, root.macs_total) == (summary.params, summary.macs)
    assert {r.name for r in summary.layers} >= {n for n, m in model.named_modules() if any(True for _ in
                                                                                            m.parameters())}
    assert {r.category for r in summary.layers} <= set(vac.inspection.CATEGORIES)
    assert summary.input_layout == summary.config.input_layout
    breakdown = summary.breakdown()
    assert sum(breakdown["params"].values()) == summary.params
    assert sum(breakdown["macs"].values()) == summary.macs
    # JSON carries the totals and every record
    data = json.loads(summary.to_json())
    assert {"params", "macs", "flops", "input_shape", "layers"} <= set(data)
    assert data["flops"] == 2 * data["macs"] and len(data["layers"]) == len(summary.layers)


def test_records_describe_timesformer():
    summary = vac.summarize("timesformer_base")
    rec = {r.name: r for r in summary.layers}
    assert [r.name for r in summary.layers[:3]] == ["", "patch_embed", "patch_embed.proj"]
    assert rec["patch_embed.proj"].input_shape == (8, 3, 224, 224)
    assert rec["patch_embed.proj"].layout == "(B·T) C H W"
    assert rec["patch_embed.proj"].macs == 8 * 196 * 768 * 3 * 16 * 16
    assert rec["blocks.3.temporal_attn"].input_shape == (196, 8, 768)
    assert rec["blocks.3.temporal_attn"].layout == "(B·H·W) T C"
    assert rec["blocks.3.attn"].layout == "(B·T) (1+H·W) C"
    assert rec["blocks.3.attn.core"].layout == "(B·T) heads (1+H·W) d"
    assert rec["blocks.3.attn.core"].attention_kind == "space"
    assert rec["blocks.3"].layout == "B (1+T·H·W) C"
    assert rec[""].layout == "B C T H W → B classes"
    assert rec["blocks.3.attn.qkv"].params == 768 * 2304 + 2304
    assert rec["blocks.3.attn"].params == 0 and rec["blocks.3.attn"].params_total == 4 * 768 * 768 + 4 * 768
    assert rec["blocks.3.norm1"].macs == 5 * 8 * 197 * 768  # fvcore: layer norm 5 per element
    assert rec["blocks"].type == "ModuleList" and rec["blocks"].calls == 0
    assert rec["blocks"].macs_total == sum(rec[f"blocks.{i}"].macs_total for i in range(12))
    categories = {name: rec[name].category for name in
                  ("patch_embed.proj", "blocks.3.attn.qkv", "blocks.3.attn.core", "blocks.3.mlp.fc1",
                   "blocks.3.norm2", "head", "")}
    assert categories == {"patch_embed.proj": "embedding", "blocks.3.attn.qkv": "attention",
                          "blocks.3.attn.core": "attention", "blocks.3.mlp.fc1": "mlp",
                          "blocks.3.norm2": "norm", "head": "head", "": "embedding"}


def test_axis_meanings_of_other_families():
    present = set(vac.list_models())
    checked = 0
    if "swin3d_t" in present:
        rec = {r.name: r for r in vac.summarize("swin3d_t").layers}
        assert rec["layers.0.blocks.0"].layout == "B T H W C"
        assert rec["layers.0.blocks.0.attn.qkv"].input_layout == "(B·nW) (wt·wh·ww) C"
        assert rec["layers.0.blocks.0.attn.core"].attention_kind == "window"
        checked += 1
    if "mvit_v2_s" in present:
        rec = {r.name: r for r in vac.summarize("mvit_v2_s").layers}
        assert rec["blocks.1.attn"].layout == "B (1+T·H·W) C"
        assert rec["blocks.1.attn.pool_q"].layout == "(B·heads) d T H W"
        assert rec["blocks.1.attn.core"].attention_kind == "pooled"
        checked += 1
    if "fiery_temporal" in present:
        summary = vac.summarize("fiery_temporal")
        assert summary.layers[0].input_layout == "B T C H W"
        assert any(r.layout == "B C T H W" for r in summary.layers if r.type == "Conv3d")
        checked += 1
    assert checked


def test_summary_options_and_errors():
    base = vac.summarize("timesformer_base")
    double = vac.summarize("timesformer_base", frames=16)
    assert double.input_shape == (1, 3, 16, 224, 224) and double.params == base.params
    assert double.macs > 2 * base.macs  # temporal attention grows with T²
    assert vac.summarize("timesformer_base", batch=2).macs == 2 * base.macs
    cfg = vac.get_config("timesformer_base", depth=2)
    assert vac.summarize(cfg).params < base.params
    model = vac.build_model("timesformer_base", device="meta", depth=2)
    assert vac.summarize(model).macs == vac.summarize(cfg).macs
    with pytest.raises(vac.ConfigError, match="available"):
        vac.summarize("no_such_model")
    with pytest.raises(vac.ConfigError, match="known"):
        vac.summarize("timesformer_base", no_such_field=1)
    with pytest.raises(vac.ConfigError, match="frames must be an integer from 1"):
        vac.summarize("timesformer_base", frames=0)
    with pytest.raises(vac.ConfigError, match="multiple of 16"):
        vac.summarize("timesformer_base", size=100)


def test_memory_estimate():
    summary = vac.summarize("timesformer_base")
    one = summary.memory_estimate()
    assert one["weights"] == 4 * summary.params
    # the live tensors of the forward (test_analysis checks the meta count against a real forward's): at least
    # the MLP's hidden layer and its GELU (2 × 1569 × 3072 floats) besides the residual stream, and not more than
    # a dozen such tensors
    residual, hidden = 1569 * 768 * 4, 1569 * 3072 * 4
    assert 2 * hidden + residual < one["activations"] < 12 * hidden
    assert one["activations"] == forward_peak_bytes(summary.config)
    two = summary.memory_estimate(dtype_bytes=2, batch=2)
    assert two["weights"] == one["weights"] // 2
    assert two["activations"] == forward_peak_bytes(summary.config, dtype=torch.bfloat16, batch=2)
    captured = summary.memory_estimate(captured=["blocks.0.attn"])
    assert captured["attention"] == 8 * 12 * 197 * 197 * 4
    with pytest.raises(vac.ConfigError, match="capturable"):
        summary.memory_estimate(captured=["blocks.0.nope"])


# --------------------------------------------------------------------------------- measured inspection
# Small configurations of every family; a family without one here fails test_every_family_has_a_small_case.

SMALL = [
    ("timesformer_base", dict(embed_dim=48, depth=2, num_heads=4, img_size=32, num_frames=4, num_classes=10)),
    ("timesformer_base", dict(embed_dim=48, depth=2, num_heads=4, img_size=32, num_frames=4, num_classes=10,
                              attention_type="joint_space_time")),
    ("timesformer_base", dict(embed_dim=48, depth=1, num_heads=4, img_size=32, num_frames=4, num_classes=10,
                              attention_type="space_only")),
    ("mvit_v1_b", dict(embed_dim=16, depths=(1, 1, 1, 1), img_size=64, num_frames=4, num_classes=10)),
    ("mvit_v2_s", dict(embed_dim=16, depths=(1, 2, 1, 1), img_size=64, num_frames=4, num_classes=10)),
    ("swin3d_t", dict(embed_dim=16, depths=(2, 2, 1, 1), num_heads=(1, 2, 2, 4), window_size=(2, 7, 7),
                      img_size=80, num_frames=4, num_classes=10)),
    ("swin_divided_st_t", dict(embed_dim=16, depths=(2, 2, 1, 1), num_heads=(1, 2, 2, 4), img_size=80,
                               num_frames=4, num_classes=10)),
    ("fiery_temporal", dict(in_channels=12, input_hw=(16, 16), start_out_channels=12)),
    ("videomae_base", dict(embed_dim=48, depth=2, num_heads=4, img_size=32, patch_size=8, num_frames=4,
                           num_classes=10)),
    ("vjepa2_vitl", dict(embed_dim=48, depth=2, num_heads=3, img_size=32, patch_size=8, num_frames=4, num_classes=10,
                         pooler_depth=1, predictor_depth=1, predictor_embed_dim=24, predictor_num_heads=2)),
]
_VIVIT_SMALL = dict(embed_dim=32, depth=2, temporal_depth=1, num_heads=4, mlp_dim=48, num_frames=4, img_size=32,
                    tubelet_size=(2, 16, 16), num_classes=10)
SMALL += [("vivit_b", dict(_VIVIT_SMALL, attention_type=a)) for a in
          ("spacetime", "factorized_encoder", "factorized_self_attention_block", "factorized_dot_product_attention")]


def _small_id(case) -> str:
    preset, overrides = case
    return preset + ("-" + overrides["attention_type"] if "attention_type" in overrides else "")


def _small(case, batch=2):
    preset, overrides = case
    if preset not in vac.list_models():
        pytest.fail(f"preset {preset} is not registered")
    model = vac.build_model(preset, **overrides)
    x = torch.randn(model.config.input_shape(batch=batch))
    return model, x


def test_every_family_has_a_small_case():
    covered = {vac.get_preset(p).config.family for p, _ in SMALL if p in vac.list_models()}
    missing = [f.name for f in vac.list_families() if f.name not in covered]
    assert not missing, f"add a small configuration to SMALL for: {missing}"


@pytest.mark.parametrize("case", SMALL, ids=[_small_id(c) for c in SMALL])
def test_analytic_and_measured_macs_agree_per_module(case):
    model, x = _small(case)
    layers = vac.attention_layers(model)
    result = vac.inspect(model, x, layers[:1])
    modules = dict(model.named_modules())
    assert result.macs == vac.summarize(case[0], batch=2, **case[1]).macs
    for rec in result.layers:
        if not rec.calls or not rec.is_leaf:
            continue
        module = modules[rec.name]
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, AttentionCore)):
            assert rec.measured_macs == rec.macs, rec.name
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)):
            assert rec.measured_macs == 0 and rec.macs > 0  # FlopCounterMode does not count normalization
        elif callable(getattr(module, "flop_count", None)):
            # the module's own count, positive; FlopCounterMode sees it, except a resize, whose arithmetic is not a
            # matmul: there it measures nothing
            assert rec.macs > 0, rec.name
            assert rec.measured_macs == (0 if type(module).__name__ == "BilinearResize" else rec.macs), rec.name
        else:
            assert rec.macs == 0 and rec.measured_macs == 0, rec.name
    assert result.measured_macs == sum(r.measured_macs or 0 for r in result.layers if r.calls)
    assert result.layers[0].measured_macs_total == result.measured_macs


def _reference_probs(q, k, scale, bias):
    logits = (q.double() @ k.double().transpose(-2, -1)) * scale
    if bias is not None:
        logits = logits + bias.double()
    return logits.softmax(-1)


@pytest.mark.parametrize("case", [c for c in SMALL if c[0] != "fiery_temporal"],
                         ids=[_small_id(c) for c in SMALL if c[0] != "fiery_temporal"])
def test_captured_probabilities_are_the_networks(case):
    """Every capturable layer at once: probabilities equal softmax(q·kᵀ·scale + bias) recomputed from the q, k and
    bias that entered that attention, rows sum to 1, groups follow the kind, logits equal model(x)."""
    model, x = _small(case)
    names = vac.attention_layers(model)
    assert names
    entered = {}

    def grab(name):
        def hook(core, args, kwargs):
            q, k, _v, *rest = args
            bias = rest[0] if rest else kwargs.get("bias")
            entered.setdefault(name, []).append((q.detach(), k.detach(), core.scale, bias))
        return hook

    cores = {n: m for n, m in model.named_modules() if isinstance(m, AttentionCore)}
    handles = [c.register_forward_pre_hook(grab(n), with_kwargs=True) for n, c in cores.items()]
    try:
        result = vac.inspect(model, x, names)
    finally:
        for h in handles:
            h.remove()
    assert torch.allclose(result.logits, model(x), rtol=1e-4, atol=1e-5)
    assert set(result.attention) == set(names)
    batch = x.shape[0]
    for name in names:
        core_names = [n for n in cores if n == name or n.startswith(name + ".")]
        expected = [call for n in core_names for call in entered[n]]
        calls = result.attention_calls[name]
        assert len(calls) == len(expected)
        for captured, (q, k, scale, bias) in zip(calls, expected):
            probs = captured.probs
            assert probs.shape == (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
            torch.testing.assert_close(probs.double(), _reference_probs(q, k, scale, bias), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]), rtol=0, atol=1e-5)
            lay = captured.layout
            t, h, w = lay.grid
            groups = {"space": batch * t, "time": batch * h * w, "joint": batch, "pooled": batch, "cross": batch}
            if lay.window is not None:
                pt, ph, pw = lay.padded_grid
                wt, wh, ww = lay.window
                assert probs.shape[0] == batch * (pt // wt) * (ph // wh) * (pw // ww)
                assert probs.shape[2] == wt * wh * ww
            else:
                assert probs.shape[0] == groups[captured.kind], (name, captured.kind)
            if captured.kind == "pooled":
                assert probs.shape[2] == torch.Size(lay.q_grid).numel() + lay.cls
                assert probs.shape[3] == torch.Size(lay.kv_grid).numel() + lay.cls


def test_timesformer_capture_matches_the_official_attention():
    """Spatial attention of a TimeSformer block recomputed as the official code does, from the qkv projection
    of the normalised tokens (``B·T`` groups, CLS first), equals the captured probabilities."""
    model, x = _small(SMALL[0])
    seen = {}
    handle = model.blocks[1].attn.qkv.register_forward_hook(lambda m, i, o: seen.setdefault("qkv", o.detach()))
    try:
        result = vac.inspect(model, x, ["blocks.1.attn"])
    finally:
        handle.remove()
    heads = model.config.num_heads
    q, k, _ = rearrange(seen["qkv"], "g n (three h d) -> three g h n d", three=3, h=heads)
    scale = model.config.head_dim ** -0.5
    reference = (q @ k.transpose(-2, -1) * scale).softmax(-1)
    captured = result.attention["blocks.1.attn"]
    assert captured.kind == "space" and captured.layout.cls
    assert captured.probs.shape == (2 * 4, heads, 1 + 4, 1 + 4)  # (B·T, heads, 1 + H·W, 1 + H·W)
    torch.testing.assert_close(captured.probs, reference)


def test_only_requested_layers_take_the_explicit_path():
    model, x = _small(SMALL[0])
    result = vac.inspect(model, x, ["blocks.0.temporal_attn"])
    paths = {r.name: r.attention_path for r in result.layers if r.type == "AttentionCore"}
    assert paths == {"blocks.0.temporal_attn.core": "explicit", "blocks.0.attn.core": "fused",
                     "blocks.1.temporal_attn.core": "fused", "blocks.1.attn.core": "fused"}
    assert list(result.attention) == ["blocks.0.temporal_attn"]
    assert all(m.sink is None for m in model.modules() if isinstance(m, AttentionCore))


def test_records_carry_times():
    model, x = _small(SMALL[0])
    result = vac.inspect(model, x, [])
    rec = {r.name: r for r in result.layers}
    assert result.time_s > 0 and rec[""].time_s <= result.time_s * 1.01 + 1e-3
    assert all(r.time_s is not None and r.time_s >= 0 for r in result.layers)
    assert rec["blocks.0"].time_s >= rec["blocks.0.mlp"].time_s >= rec["blocks.0.mlp"].self_time_s >= 0
    assert result.attention == {}


def _has_hooks(model):
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_hooks_and_sinks_are_removed_when_the_forward_fails():
    model, x = _small(SMALL[0])
    broken = model.blocks[1].mlp

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    broken.forward = fail
    with pytest.raises(RuntimeError, match="boom"):
        vac.inspect(model, x, ["blocks.0.attn", "blocks.1.temporal_attn"])
    assert not _has_hooks(model)
    assert all(m.sink is None and m.fused for m in model.modules() if isinstance(m, AttentionCore))
    del broken.forward
    with pytest.raises(ValueError):  # a clip the model rejects fails the same way
        vac.inspect(model, x[:, :, :, :30], ["blocks.0.attn"])
    assert not _has_hooks(model)
    result = vac.inspect(model, x, ["blocks.0.attn"])
    assert not _has_hooks(model)
    torch.testing.assert_close(result.logits, model(x))


def test_unknown_attention_layer_lists_the_capturable_ones():
    model, x = _small(SMALL[0])
    with pytest.raises(vac.ConfigError, match="blocks.0.temporal_attn"):
        vac.inspect(model, x, ["blocks.9.attn"])
    assert not _has_hooks(model)
    assert vac.attention_layers(model) == ["blocks.0.attn", "blocks.0.temporal_attn", "blocks.1.attn",
                                           "blocks.1.temporal_attn"]


def test_capture_costs_only_the_captured_memory():
    """Records keep shapes, not tensors: what an inspection holds beyond the logits is the captured attention."""
    model, x = _small(SMALL[1])
    result = vac.inspect(model, x, ["blocks.1.attn"])
    held = [v for r in result.layers for v in vars(r).values() if isinstance(v, torch.Tensor)]
    assert held == []
    assert sum(c.probs.numel() for cs in result.attention_calls.values() for c in cs) == 2 * 4 * 17 * 17


def test_captures_and_forwards_of_one_model_never_overlap():
    """The app shares one model between sessions: a forward started by another thread while a capture holds the
    model (here ``classify``, the app's prediction path) waits for it, so the capture sees only its own calls."""
    import threading

    from videoattn_core.run import runtime
    from videoattn_core.attention.maps import capture_all
    from videoattn_core.attention.capture import capturing

    model, x = _small(SMALL[0])
    per_forward = len(capture_all(model, x[:1]))
    other = threading.Thread(target=runtime.classify, args=(model, x[:1]))
    with capturing(model) as records, torch.no_grad():
        other.start()
        other.join(timeout=1.0)  # without the lock the other forward would run (and be captured) meanwhile
        assert other.is_alive()
        model(x[:1])
    other.join(timeout=60)
    assert not other.is_alive()
    assert len(records) == per_forward
    assert all(m.sink is None for m in model.modules() if isinstance(m, AttentionCore))


def test_measured_macs_per_module_ignore_other_threads():
    """Another session's forward of a model of the same class, in another thread, changes no measured count."""
    import threading

    model, x = _small(SMALL[0])
    other = vac.build_model(SMALL[0][0], **SMALL[0][1])
    alone = {r.name: (r.measured_macs, r.measured_macs_total) for r in vac.inspect(model, x).layers}
    stop = threading.Event()

    def busy():
        with torch.no_grad():
            while not stop.is_set():
                other(x)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        runs = [{r.name: (r.measured_macs, r.measured_macs_total) for r in vac.inspect(model, x).layers}
                for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    assert all(run == alone for run in runs)


@pytest.mark.parametrize("n_k", [8, 197, 392, 1569, 4097, 25089])
def test_captured_probabilities_are_the_softmax_of_the_logits_bit_for_bit(n_k):
    """A captured layer's softmax is taken in place on the CPU (no second N_q × N_k buffer), which is right only while
    PyTorch's kernel reads a whole row before it writes it. Checked against the out-of-place softmax of the same
    logits, bit for bit, at the row lengths the families meet: a frame's tokens, a window, pooled keys, joint
    space-time attention, MViT's first stage; a torch upgrade that breaks the assumption fails here."""
    generator = torch.Generator().manual_seed(n_k)
    q = torch.randn(2, 3, 16, 32, generator=generator) * 3  # (G, heads, N_q, d)
    k, v = (torch.randn(2, 3, n_k, 32, generator=generator) * 3 for _ in range(2))
    bias = torch.randn(1, 3, 16, n_k, generator=generator)
    core = AttentionCore("joint", scale=1.0)  # a power of two: scaling q is exactly scaling the logits
    captured = []
    core.sink = captured.append
    with torch.no_grad():
        out = core(q, k, v, bias)
    expected = torch.softmax(q @ k.transpose(-2, -1) + bias, dim=-1)
    assert torch.equal(captured[0].probs, expected)
    assert torch.equal(out, expected @ v)


_POOLING = [("mvit_v1_b", dict(SMALL[3][1], mode=mode, num_frames=8)) for mode in ("avg", "max")]  # MViT's other pooling ops


@pytest.mark.parametrize("case", SMALL + _POOLING,
                         ids=[_small_id(c) for c in SMALL] + [f"mvit_v1_b-{c[1]['mode']}" for c in _POOLING])
def test_every_family_runs_and_inspects_in_bfloat16_on_the_cpu(case):
    """The app offers bfloat16 on the CPU: every layer of every family has a CPU kernel for it (or computes in
    float32 where PyTorch has none), and the logits stay close to float32's."""
    model, x = _small(case)
    with torch.no_grad():
        expected = model.eval()(x)
        model.to(torch.bfloat16)
        got = model(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    assert relative_error(got.float(), expected) <= 0.05  # bfloat16 keeps 8 bits of mantissa: about 0.4 % a rounding
    layers = vac.attention_layers(model)
    result = vac.inspect(model, x.to(torch.bfloat16), layers[:1])  # the captured layer takes the explicit softmax
    assert relative_error(result.logits.float(), expected) <= 0.05
