"""MViT v1/v2: parity with torchvision, the per-block expansion, every pooling option, configs and inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import official_keys
import videoattn_core as vac
from reference import Reference, assert_both_paths_match
from videoattn_core.models.layers import AttentionCore
from videoattn_core.cli.main import main
from videoattn_core.models.mvit import DecomposedRelPos

PUBLISHED_PARAMS = {"mvit_v1_b": 36_610_672, "mvit_v2_s": 34_537_744}


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["mvit_v1_b", "mvit_v2_s"])
def test_logits_match_torchvision(fixture, tmp_path):
    ref = Reference(fixture)
    model = vac.build_model(fixture)
    assert sum(p.numel() for p in model.parameters()) == ref.params == PUBLISHED_PARAMS[fixture]

    tv_file = tmp_path / f"{fixture}.safetensors"
    save_file(ref.state_dict(), str(tv_file))
    report = vac.load_checkpoint(model, tv_file)
    assert report.layout.startswith("torchvision") and report.tensors == len(ref.keys)
    assert_both_paths_match(model, ref)



@pytest.mark.parametrize("name", ["mvit_v1_b", "mvit_v2_s"])
def test_pyslowfast_checkpoint_with_the_official_names_loads(name):
    """What PySlowFast saves in its .pyth files: {"model_state": {name: ...}}, the names exactly as PySlowFast's MViT
    has them for the MVIT_B_16x4_CONV / MViTv2_S_16x4 configs (tests/data/official_keys): our native names."""
    official = official_keys.load(f"pyslowfast_{name}")
    assert official["parameters"] == PUBLISHED_PARAMS[name]
    official_keys.assert_official_checkpoint_loads(
        official_keys.build_unfilled(name), official["keys"], lambda state: {"epoch": 200, "model_state": state},
        lambda key: key, "native", torch.randn(1, 3, 4, 64, 64))


def test_torchvision_names_and_shapes_are_converted():
    state = Reference("mvit_v1_b").state_dict()
    model = vac.build_model("mvit_v1_b", device="meta")
    converted = vac.registry.family_of(model.config).checkpoint_layouts[0].convert(state, model.config)
    assert converted["pos_embed_spatial"].shape == (1, 3136, 96)
    assert converted["pos_embed_temporal"].shape == (1, 8, 96)
    assert converted["pos_embed_class"].shape == (1, 1, 96)
    assert torch.equal(converted["blocks.1.attn.pool_q.weight"], state["blocks.1.attn.pool_q.pool.weight"])
    assert torch.equal(converted["blocks.1.attn.norm_q.bias"], state["blocks.1.attn.pool_q.norm_act.0.bias"])
    assert torch.equal(converted["blocks.0.mlp.fc2.weight"], state["blocks.0.mlp.3.weight"])
    assert torch.equal(converted["blocks.0.proj.weight"], state["blocks.0.project.weight"])
    assert torch.equal(converted["head.projection.weight"], state["head.1.weight"])
    assert set(converted) == set(model.state_dict())


def test_checkpoint_of_another_size_says_which_settings_fit():
    state = Reference("mvit_v2_s").state_dict()
    model = vac.build_model("mvit_v2_s", num_classes=10, device="meta")
    with pytest.raises(vac.CheckpointError, match="num_classes=400"):
        vac.load_checkpoint(model, state)
    v1 = vac.build_model("mvit_v1_b", device="meta")
    with pytest.raises(vac.CheckpointError, match="rel_pos_spatial=True"):
        vac.load_checkpoint(v1, state)
    v1_state = Reference("mvit_v1_b").state_dict()
    v1_32 = vac.build_model("mvit_v1_b", num_frames=32, img_size=256, device="meta")
    with pytest.raises(vac.CheckpointError, match="num_frames=16, img_size=224"):
        vac.load_checkpoint(v1_32, v1_state)


def test_published_parameter_counts_and_macs():
    """Parameters, and multiply-accumulates counted as fvcore does (linear, conv, LayerNorm at 5 per element,
    both attention products, the relative-position products), against the published figures."""
    published = {  # name: (params, GMACs at the built size, tolerance on GMACs)
        "mvit_v1_b": (36_610_672, 70.80, 0.01),
        "mvit_v1_b_32x3": (36_611_440, 170.4, 0.1),
        "mvit_v2_s": (34_537_744, 64.46, 0.01),
        "mvit_v2_b": (51.2e6, 225.0, 0.5),
    }
    assert vac.list_models("mvit") == list(published)
    for name, (params, gmacs, tol) in published.items():
        model = vac.build_model(name, device="meta")
        n = sum(p.numel() for p in model.parameters())
        assert (n == params) if isinstance(params, int) else round(n / 1e5) / 10 == params / 1e6, name
        assert abs(_count_macs(model) / 1e9 - gmacs) <= tol, name


def _count_macs(model: nn.Module) -> int:
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += math.prod(output.shape[:-1]) * module.in_features * module.out_features
        elif isinstance(module, nn.Conv3d):
            total += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.LayerNorm):
            total += 5 * inputs[0].numel()
        elif isinstance(module, AttentionCore):
            q, k, v = inputs[:3]
            total += q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * (q.shape[3] + v.shape[3])
        elif isinstance(module, DecomposedRelPos):
            total += module.flop_count(inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.empty(model.config.input_shape(), device=next(model.parameters()).device))
    for h in handles:
        h.remove()
    return total


# torchvision's literal per-block tables (torchvision/models/video/mvit.py), which the stage-level config expands to
TORCHVISION_HEADS = [1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 8, 8]
TORCHVISION_V1_CHANNELS = ([96, 192, 192] + [384] * 11 + [768, 768],
                           [192, 192] + [384] * 11 + [768] * 3)
TORCHVISION_V2_CHANNELS = ([96, 96, 192, 192] + [384] * 11 + [768],
                           [96, 192, 192] + [384] * 11 + [768, 768])
TORCHVISION_STRIDE_KV = [(1, 8, 8), (1, 4, 4), (1, 4, 4)] + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2


@pytest.mark.parametrize("name, channels", [("mvit_v1_b", TORCHVISION_V1_CHANNELS),
                                            ("mvit_v2_s", TORCHVISION_V2_CHANNELS)])
def test_stage_config_expands_to_torchvision_block_table(name, channels):
    config = vac.get_config(name)
    specs = config.block_specs()
    assert [s.num_heads for s in specs] == TORCHVISION_HEADS
    assert [s.dim for s in specs] == channels[0]
    assert [s.dim_out for s in specs] == channels[1]
    assert [s.stride_kv for s in specs] == TORCHVISION_STRIDE_KV
    assert all(s.kernel_kv == (3, 3, 3) for s in specs)
    q_strided = [s.index for s in specs if s.stride_q == (1, 2, 2)]
    assert q_strided == [1, 3, 14]
    if name == "mvit_v1_b":
        assert [s.index for s in specs if s.pool_q] == [1, 3, 14]
    else:
        assert all(s.pool_q and s.kernel_q == (3, 3, 3) for s in specs)
    grids = config.block_grids()
    assert [g.q for g in grids] == [(8, 56, 56)] * 1 + [(8, 28, 28)] * 2 + [(8, 14, 14)] * 11 + [(8, 7, 7)] * 2
    # keys are pooled from each block's input grid: 7² except in the blocks that shrink the grid
    assert [g.kv[1] for g in grids] == [7, 14, 7, 14] + [7] * 10 + [14, 7]


def test_v2_b_and_32_frame_presets_expand_from_stages():
    specs = vac.get_config("mvit_v2_b").block_specs()
    assert len(specs) == 24
    assert [s.index for s in specs if s.stride_q == (1, 2, 2)] == [2, 5, 21]
    assert specs[-1].dim_out == 768 and specs[-1].num_heads == 8
    grids = vac.get_config("mvit_v1_b_32x3").block_grids()
    assert grids[0].input == (16, 56, 56) and grids[-1].q == (16, 7, 7)


# --- options on small models ------------------------------------------------------------------------------

SMALL = dict(embed_dim=16, num_heads=1, depths=(1, 1, 1), num_frames=8, img_size=32, stride_kv=(1, 4, 4),
             num_classes=10)
# 8 frames × 32² → a 4×8×8 token grid; stride_q 1×2×2 at blocks 1 and 2
Q_GRIDS = [(4, 8, 8), (4, 4, 4), (4, 2, 2)]
KV_GRIDS = [(4, 2, 2), (4, 4, 4), (4, 4, 4)]  # kv strides 1×4×4, 1×2×2, 1×1×1 (kernel 3 still pools)
OPTIONS = [(mode, pool_first, separate_qkv, cls)
           for mode, pool_first, separate_qkv, cls in itertools.product(
               ("conv", "conv_unshared", "avg", "max"), (False, True), (False, True), (True, False))
           if mode != "conv_unshared" or pool_first]


def _small(preset: str = "mvit_v1_b", **overrides) -> nn.Module:
    return vac.build_model(preset, **{**SMALL, **overrides})


def _capture(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    captured = []
    cores = [m for m in model.modules() if isinstance(m, AttentionCore)]
    for core in cores:
        core.sink = captured.append
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for core in cores:
            core.sink = None
    return out, captured


@pytest.mark.parametrize("preset", ["mvit_v1_b", "mvit_v2_s"])
@pytest.mark.parametrize("mode, pool_first, separate_qkv, cls", OPTIONS)
def test_pooling_options_grids_paths_and_names(preset, mode, pool_first, separate_qkv, cls):
    model = _small(preset, mode=mode, pool_first=pool_first, separate_qkv=separate_qkv, has_cls_embed=cls)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        fused = model(x)
    explicit, captured = _capture(model, x)  # a sink forces the explicit softmax path
    assert fused.shape == (2, 10) and torch.isfinite(fused).all()
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)

    extra = 1 if cls else 0
    assert [c.layout.q_grid for c in captured] == Q_GRIDS
    assert [c.layout.kv_grid for c in captured] == KV_GRIDS
    for c, q, kv, heads in zip(captured, Q_GRIDS, KV_GRIDS, (1, 2, 4)):
        assert c.layout.kind == "pooled" and c.layout.cls is cls and c.layout.tokens == "(t h w)"
        assert c.probs.shape == (2, heads, math.prod(q) + extra, math.prod(kv) + extra)
        torch.testing.assert_close(c.probs.sum(-1), torch.ones(c.probs.shape[:-1]))
    assert [c.layout.grid for c in captured] == [(4, 8, 8), (4, 8, 8), (4, 4, 4)]

    names = dict(model.named_parameters())
    assert ("cls_token" in names) is cls
    fused_qkv = not (pool_first or separate_qkv)
    assert ("blocks.0.attn.qkv.weight" in names) is fused_qkv
    assert ("blocks.0.attn.q.weight" in names) is not fused_qkv
    attn = model.blocks[2].attn  # 4 heads; pooling sees one head's channels, or all of them (conv_unshared)
    if mode in ("avg", "max"):
        assert isinstance(attn.pool_q, nn.AvgPool3d if mode == "avg" else nn.MaxPool3d)
        assert attn.norm_q is None and not any(".pool_" in n or ".norm_" in n for n in names)
    else:
        channels = model.config.block_specs()[2].dim if pool_first else \
            model.config.block_specs()[2].att_dim
        per_pool = channels if mode == "conv_unshared" else channels // 4
        assert names["blocks.2.attn.pool_q.weight"].shape == (per_pool, 1, 3, 3, 3)
        assert names["blocks.2.attn.norm_k.weight"].shape == (per_pool,)


def test_pooling_is_skipped_when_kernel_and_stride_are_all_one():
    model = _small(kernel_kv=(1, 1, 1), stride_kv=(1, 1, 1))
    names = dict(model.named_parameters())
    assert not any(".pool_k" in n or ".pool_v" in n for n in names)
    assert "blocks.0.attn.pool_q.weight" not in names  # v1: no query pooling where the grid is kept
    assert "blocks.1.attn.pool_q.weight" in names
    _, captured = _capture(model, torch.randn(1, 3, 8, 32, 32))
    assert [c.layout.kv_grid for c in captured] == [(4, 8, 8), (4, 8, 8), (4, 4, 4)]  # keys at full resolution
    assert [c.layout.q_grid for c in captured] == Q_GRIDS


def test_channel_growth_before_or_in_attention():
    v1, v2 = _small().blocks[1], _small("mvit_v2_s").blocks[1]
    # v1: block 0 grows 16 → 32 in its MLP and residual projection; block 1 attends at 32
    assert _small().blocks[0].proj.weight.shape == (32, 16) and v1.attn.qkv.weight.shape == (96, 32)
    # v2: block 1 grows 16 → 32 inside its attention, the residual projected before the skip pooling
    assert v2.proj.weight.shape == (32, 16) and v2.attn.qkv.weight.shape == (96, 16)
    assert v2.mlp.fc1.weight.shape == (128, 32) and isinstance(v2.pool_skip, nn.MaxPool3d)
    assert v2.pool_skip.kernel_size == (1, 3, 3) and v2.pool_skip.stride == (1, 2, 2)


def test_residual_pooling_adds_the_pooled_queries():
    model = _small("mvit_v2_s", depths=(1,))
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.qkv.weight[32:].zero_()  # v = 0: the attention itself contributes nothing
        attn.qkv.bias[32:].zero_()
    x = torch.randn(2, 1 + 4 * 8 * 8, 16)
    grids = model.config.block_grids()[0]
    with torch.no_grad():
        out = attn(x, grids.input, grids.q, grids.kv)
        q = attn.norm_q(_pool_q(attn, attn.qkv(x)[..., :16], grids.input))
        q[:, 0] = 0  # the CLS token's query is not added back
        torch.testing.assert_close(out, attn.proj(q))
        attn.residual_pooling = False
        torch.testing.assert_close(attn(x, grids.input, grids.q, grids.kv), attn.proj(torch.zeros_like(q)))


def _pool_q(attn, q, grid):
    cls, patches = q[:, :1], q[:, 1:]
    t, h, w = grid
    pooled = attn.pool_q(patches.transpose(1, 2).reshape(q.shape[0], 16, t, h, w))
    return torch.cat((cls, pooled.flatten(2).transpose(1, 2)), dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bfloat16 builds it by a product on the CPU
@pytest.mark.parametrize("has_cls", [True, False])
def test_relative_position_bias_matches_its_definition(dtype, has_cls):
    torch.manual_seed(1)
    rel = DecomposedRelPos(has_cls=has_cls)
    n_cls = int(has_cls)
    q = torch.randn(2, 3, n_cls + 2 * 3 * 3, 4)
    tables = torch.randn(5, 4), torch.randn(5, 4), torch.randn(3, 4)  # 2·3 − 1 and 2·2 − 1 offsets
    bias = rel(q.to(dtype), *(t.to(dtype) for t in tables), (2, 3, 3), (2, 3, 3))
    assert bias.shape == (2, 3, n_cls + 18, n_cls + 18) and bias.dtype == dtype
    if has_cls:
        assert bias[:, :, 0].abs().max() == 0 and bias[:, :, :, 0].abs().max() == 0
    tol = {} if dtype == torch.float32 else {"rtol": 0.02, "atol": 0.05}  # bf16 inputs: 8-bit mantissas
    positions = list(itertools.product(range(2), range(3), range(3)))
    for i, (ti, hi, wi) in enumerate(positions):
        for j, (tj, hj, wj) in enumerate(positions):
            r = tables[0][hi - hj + 2] + tables[1][wi - wj + 2] + tables[2][ti - tj + 1]
            torch.testing.assert_close(bias[:, :, n_cls + i, n_cls + j].float(), q[:, :, n_cls + i] @ r, **tol)
    assert rel.flop_count((q, *tables, (2, 3, 3), (2, 3, 3)), bias) == 2 * 3 * 18 * 4 * (3 + 3 + 2)
    assert rel.flop_count((q, None, None, tables[2], (2, 3, 3), (2, 3, 3)), bias) == 2 * 3 * 18 * 4 * 2


def test_zero_relative_tables_equal_no_relative_positions():
    with_rel = _small("mvit_v2_s", rel_pos_zero_init=True)
    without = _small("mvit_v2_s", rel_pos_spatial=False, rel_pos_temporal=False)
    tables = {k: v for k, v in with_rel.state_dict().items() if ".rel_pos_" in k}
    assert tables and all(v.abs().max() == 0 for v in tables.values())
    assert tables["blocks.0.attn.rel_pos_h"].shape == (15, 16)  # 2·max(8, 8 // 1) − 1
    assert tables["blocks.0.attn.rel_pos_t"].shape == (7, 16)  # 2·4 − 1
    without.load_state_dict({k: v for k, v in with_rel.state_dict().items() if k not in tables})
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(with_rel(x), without(x))
        for t in tables.values():
            t.normal_()
        vac.set_fused_attention(with_rel, False)
        explicit = with_rel(x)
        vac.set_fused_attention(with_rel, True)
        fused = with_rel(x)
    assert not torch.allclose(fused, without(x), atol=1e-4)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"sep_pos_embed": False}, {"has_cls_embed": False},
                                       {"sep_pos_embed": False, "has_cls_embed": False}])
def test_other_input_sizes_resize_embeddings(overrides):
    model = _small(**overrides)
    _, captured = _capture(model, torch.randn(1, 3, 12, 48, 40))  # a 6×12×10 token grid
    assert [c.layout.q_grid for c in captured] == [(6, 12, 10), (6, 6, 5), (6, 3, 3)]
    # at the built size the resized embedding is the table itself; elsewhere a trilinear resize of it
    built = model._abs_pos_embed((4, 8, 8))
    assert built.shape == (1, 4 * 8 * 8 + (0 if overrides.get("has_cls_embed") is False else 1), 16)
    assert model._abs_pos_embed((6, 12, 10)).shape[1] == built.shape[1] - 256 + 720
    v2 = _small("mvit_v2_s", **overrides)
    with torch.no_grad():
        out = v2(torch.randn(1, 3, 12, 48, 40))  # relative tables interpolated to the larger offsets
    assert torch.isfinite(out).all()


def test_separable_positional_embedding_is_temporal_plus_spatial():
    model = _small()
    pos = model._abs_pos_embed((4, 8, 8))
    torch.testing.assert_close(pos[0, 0], model.pos_embed_class[0, 0])
    # token (t, h, w) sits at 1 + t·64 + h·8 + w
    torch.testing.assert_close(pos[0, 1 + 2 * 64 + 3 * 8 + 5],
                               model.pos_embed_temporal[0, 2] + model.pos_embed_spatial[0, 3 * 8 + 5])


def test_meta_build_and_presets_override_every_field():
    model = vac.build_model("mvit_v2_b", device="meta", num_classes=174, mode="max", pool_first=True)
    assert model.head.projection.weight.shape == (174, 768) and model.head.projection.weight.is_meta
    config = vac.get_config("mvit_v1_b", **{"depths": (2, 2), "stride_q": (2, 2, 2)})
    assert config.stage_starts == (2,) and config.depth == 4


# --- errors -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field, words", [
    (dict(depths=(1, 1, 1, 1, 1)), "stride_q", "shrink below 1"),
    (dict(stride_q=(1, 16, 16)), "stride_q", "shrink below 1"),
    (dict(num_frames=4, mode="avg", pool_q_every_block=True), "kernel_q", "larger than the 2×8×8 token grid"),
    (dict(num_frames=4, mode="avg"), "kernel_kv", "mode='avg' does not allow"),
    (dict(kernel_q=(2, 2, 2), pool_q_every_block=True), "kernel_q", "odd kernel_q"),
    (dict(img_size=4, patch_padding=(1, 0, 0)), "patch_kernel", "kernel is larger than the padded input"),
    (dict(mode="conv_unshared"), "mode", "needs pool_first=True"),
    (dict(mode="median"), "mode", "one of 'conv', 'conv_unshared', 'avg', 'max'"),
    (dict(embed_dim=30, num_heads=4), "num_heads", "divisible by the heads"),
    (dict(depths=()), "depths", "1 to 8 stages"),
    (dict(depths=(100, 40)), "depths", "at most 128"),
    (dict(stride_q=(1, 2)), "stride_q", "of length 3"),
    (dict(kernel_kv=(0, 3, 3)), "kernel_kv", "from 1"),
    (dict(frobnicate=1), "frobnicate", "known:"),
])
def test_impossible_configs_raise_config_error(overrides, field, words):
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model("mvit_v1_b", device="meta", **{**SMALL, **overrides})
    assert info.value.field == field
    assert words in str(info.value)


def test_presets_reject_strides_that_do_not_fit_their_built_size():
    with pytest.raises(vac.ConfigError, match=r"at the built input size \(16 frames × 16²\).*stride_q"):
        vac.build_model("mvit_v2_s", img_size=16, device="meta")


@pytest.mark.parametrize("preset, overrides, field, words", [
    ("mvit_v2_s", dict(num_frames=1), "num_frames", "table along time of block 0 would be empty"),
    ("mvit_v2_s", dict(img_size=17), "img_size", "table along height and width of block 15 would be empty"),
    ("mvit_v2_b", dict(num_frames=1), "num_frames", "leaves 0×56×56 there"),
])
def test_relative_position_tables_the_official_code_cannot_size_are_refused(preset, overrides, field, words,
                                                                          capsys):
    """torchvision and PySlowFast size the tables from the input floor-divided by the strides: where that reaches
    0 they fail to build (a negative parameter size); here the config says why, and the command line in one line."""
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model(preset, device="meta", **overrides)
    assert info.value.field == field and words in str(info.value)
    name, value = next(iter(overrides.items()))
    code = main(["summary", preset, "--set", f"{name}={value}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.startswith("error: at the built input size")


@pytest.mark.parametrize("shape, words", [
    ((3, 8, 32, 32), r"expected a float tensor \(B, C, T, H, W\) with C=3"),
    ((1, 1, 8, 32, 32), r"expected a float tensor \(B, C, T, H, W\) with C=3"),
    ((1, 3, 8, 8, 8), r"expected a float tensor \(B, C, T, H, W\) such as \(1, 3, 8, 32, 32\).*8 frames × "
                      r"8×8 px.*stride_q=1×2×2 at block 2 .*shrink below 1"),
])
def test_wrong_inputs_say_what_is_expected(shape, words):
    model = _small()
    with pytest.raises(ValueError, match=words):
        model(torch.randn(*shape))


def test_integer_input_rejected():
    with pytest.raises(ValueError, match="float tensor"):
        _small()(torch.zeros(1, 3, 8, 32, 32, dtype=torch.uint8))
