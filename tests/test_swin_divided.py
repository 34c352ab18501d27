"""Divided space-time window attention: the spatial step is Video Swin's window attention on one-frame windows,
the temporal step is biased by frame offset, the analytic cost matches what runs, and the model lines up with
Video Swin at equal width and depth."""

from __future__ import annotations

import pytest
import torch

import videoattn_core as vac
from videoattn_core.attention.maps import capture_all
from videoattn_core.models.layers import AttentionCore
from videoattn_core.models.swin3d import SwinTransformer3DConfig, WindowAttention3D
from videoattn_core.models.swin_divided import DividedWindowAttention
from videoattn_core.models.windows import clip_window, padded_grid


def _small(**overrides):
    base = dict(embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=(4, 4), num_frames=8, num_classes=7)
    base.update(overrides)
    return vac.build_model("swin_divided_st_t", **base)


def _captured(model, x):
    return capture_all(model, x)


def test_same_width_and_depth_as_swin3d_t_and_parameter_budget():
    divided = vac.build_model("swin_divided_st_t", device="meta")
    joint = vac.build_model("swin3d_t", device="meta")
    for field in ("embed_dim", "depths", "num_heads", "patch_size", "mlp_ratio", "num_frames", "img_size"):
        assert getattr(divided.config, field) == getattr(joint.config, field), field
    # per block, the 2535-row 3D table gives way to a 169-row 2D table, a 31-row temporal table (16 token
    # frames) and a temporal LayerNorm; qkv and proj are shared by the two steps
    heads = sum(d * h for d, h in zip((2, 2, 6, 2), (3, 6, 12, 24)))
    norms = sum(d * 2 * 96 * 2 ** i for i, d in enumerate((2, 2, 6, 2)))
    expected = 28_158_070 - 2535 * heads + 169 * heads + 31 * heads + norms
    assert sum(p.numel() for p in divided.parameters()) == expected == 27_844_672
    block = divided.layers[2].blocks[1]
    assert block.attn.relative_position_bias_table.shape == (169, 12)
    assert block.attn.temporal_position_bias_table.shape == (31, 12)
    assert block.attn.shift_size == (0, 3, 3)


def _copy_into_swin3d_attention(attn: DividedWindowAttention, window, shift) -> WindowAttention3D:
    config = SwinTransformer3DConfig(embed_dim=attn.dim, num_heads=(attn.num_heads,), depths=(1,), window_size=window)
    swin = WindowAttention3D(config, attn.dim, attn.num_heads, shift)
    swin.load_state_dict({k: v for k, v in attn.state_dict().items() if not k.startswith("temporal")})
    return swin


@pytest.mark.parametrize("block", [0, 1])
def test_spatial_step_is_video_swin_attention_on_one_frame_windows(block):
    model = _small()
    attn = model.layers[0].blocks[block].attn
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 1)
    swin = _copy_into_swin3d_attention(attn, (1, 4, 4), attn.shift_size)
    x = torch.randn(2, 3, 10, 13, 16)  # (B, T, H, W, C): H, W padded to 12, 16 for (1, 4, 4) windows
    with torch.no_grad():
        spatial = attn(x, temporal=False)
        torch.testing.assert_close(spatial, swin(x), rtol=1e-5, atol=1e-6)
        # frames do not mix in the spatial step
        y = x.clone()
        y[:, 1] += 1.0
        changed = (attn(y, temporal=False) - spatial).abs().amax(dim=(0, 2, 3, 4))
    assert changed[1] > 0 and changed[0] == 0 and changed[2] == 0


def test_clipped_spatial_window_reads_the_bias_of_its_own_offsets():
    attn = _small().layers[0].blocks[0].attn
    with torch.no_grad():
        attn.relative_position_bias_table.copy_(torch.randn_like(attn.relative_position_bias_table))
    bias = attn.relative_position_bias((1, 3, 2))[0]  # (heads, 6, 6) for a 3×2 window of a 4×4 table
    table = attn.relative_position_bias_table
    for q, (qh, qw) in enumerate((h, w) for h in range(3) for w in range(2)):
        for k, (kh, kw) in enumerate((h, w) for h in range(3) for w in range(2)):
            row = (qh - kh + 3) * 7 + (qw - kw + 3)
            assert torch.equal(bias[:, q, k], table[row])
    captures = _captured(_small(), torch.randn(1, 3, 4, 12, 8))  # token grids 2×3×2 and 2×2×1: clipped
    spatial = [c for c in captures if c.kind == "space"]
    assert [c.layout.window for c in spatial] == [(1, 3, 2), (1, 3, 2), (1, 2, 1), (1, 2, 1)]
    assert all(c.layout.shift == (0, 0, 0) for c in spatial)


def test_temporal_step_is_biased_by_frame_offset():
    model = _small(depths=(1,), num_heads=(2,))
    attn = model.layers[0].blocks[0].attn
    table = attn.temporal_position_bias_table  # 4 token frames: offsets −3..3 in rows 0..6
    x = torch.randn(1, 3, 8, 16, 16)
    with torch.no_grad():
        table.zero_()
        table[3 + 1] = 60.0  # query frame − key frame = 1: attend to the previous frame
        previous = [c for c in _captured(model, x) if c.kind == "time"][0]
        table.zero_()
        table[3] = 60.0  # offset 0: attend to the same frame
        same = [c for c in _captured(model, x) if c.kind == "time"][0]
    assert previous.layout.groups == "(b h w)" and previous.layout.tokens == "t"
    assert previous.probs.shape == (4 * 4, 2, 4, 4)
    torch.testing.assert_close(previous.probs[:, :, 1:].argmax(-1), torch.arange(3).expand(16, 2, 3))
    assert previous.probs[:, :, 1:].amax(-1).min() > 0.999
    torch.testing.assert_close(same.probs, torch.eye(4).expand(16, 2, 4, 4), atol=1e-6, rtol=0)


def test_temporal_step_matches_an_independent_computation():
    """The temporal branch on a (B, T, H, W, C) grid, written out with plain tensor maths: every spatial position's
    frames attend to each other with the frame-offset bias, then the output projection; two clips."""
    attn = _small(depths=(1,), num_heads=(2,)).layers[0].blocks[0].attn.eval()
    with torch.no_grad():
        torch.nn.init.normal_(attn.temporal_position_bias_table)
        x = torch.randn(2, 4, 5, 3, attn.dim)
        b, t, h, w, c = x.shape
        heads, d = attn.num_heads, c // attn.num_heads
        qkv = (x @ attn.qkv.weight.T + attn.qkv.bias).reshape(b, t, h, w, 3, heads, d)
        q, k, v = (qkv[..., i, :, :].permute(0, 2, 3, 4, 1, 5) for i in range(3))  # (b, h, w, heads, t, d)
        offsets = torch.arange(t)[:, None] - torch.arange(t)[None, :]
        bias = attn.temporal_position_bias_table[offsets + attn.temporal_tokens - 1].permute(2, 0, 1)  # (heads, t, t)
        probs = (q @ k.transpose(-2, -1) * d ** -0.5 + bias).softmax(-1)
        out = (probs @ v).permute(0, 4, 1, 2, 3, 5).reshape(b, t, h, w, c)  # (b, t, h, w, heads·d)
        expected = out @ attn.proj.weight.T + attn.proj.bias
        fused = attn(x, temporal=True)
        vac.set_fused_attention(attn, False)
        explicit = attn(x, temporal=True)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(explicit, expected, rtol=1e-5, atol=1e-5)


def test_longer_clips_clamp_the_frame_offsets():
    attn = _small().layers[0].blocks[0].attn
    with torch.no_grad():
        attn.temporal_position_bias_table.copy_(torch.randn(7, 2))
    bias = attn.temporal_position_bias(6)[0]  # built for 4 token frames, run on 6
    table = attn.temporal_position_bias_table
    assert bias.shape == (2, 6, 6)
    assert torch.equal(bias[:, 5, 0], table[6]) and torch.equal(bias[:, 0, 5], table[0])
    assert torch.equal(bias[:, 4, 2], table[5]) and torch.equal(bias[:, 2, 2], table[3])


@pytest.mark.parametrize("shape", [
    (2, 3, 11, 28, 20),  # token grid 6×7×5 (T and H padded), then 6×4×3 (W clipped: no shift)
    (2, 3, 8, 48, 48),  # 4×12×12 then 4×6×6: whole windows, shifted (grouped by mask on the fused path)
])
def test_sdpa_and_explicit_paths_agree_with_batch_padding_and_clipping(shape):
    model = _small(window_size=(3, 3))
    x = torch.randn(shape)
    with torch.no_grad():
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    assert fused.shape == (2, 7)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def _analytic_and_executed_macs(model, shape):
    """Attention MACs from each attention's ``flops(N, T, temporal)`` and from the q, k, v shapes it ran."""
    analytic = executed = 0

    def on_attention(module, args, kwargs, output):
        nonlocal analytic
        b, t, h, w, _ = args[0].shape
        if kwargs.get("temporal", False):
            analytic += module.flops(b * h * w, t, temporal=True)
        else:
            window, _ = clip_window((t, h, w), module.window_size, module.shift_size)
            _, hp, wp = padded_grid((t, h, w), window)
            windows = b * (hp // window[1]) * (wp // window[2])
            analytic += windows * module.flops(window[1] * window[2], t, temporal=False)

    def on_core(module, inputs, output):
        nonlocal executed
        q, k, v = inputs[:3]
        executed += q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * (q.shape[3] + v.shape[3])

    for module in model.modules():
        if isinstance(module, DividedWindowAttention):
            module.register_forward_hook(on_attention, with_kwargs=True)
        if isinstance(module, AttentionCore):
            module.register_forward_hook(on_core)
    device = next(model.parameters()).device
    with torch.no_grad():
        model(torch.zeros(shape, device=device))
    return analytic, executed


def test_analytic_attention_cost_matches_what_runs():
    analytic, executed = _analytic_and_executed_macs(_small(window_size=(3, 3)), (2, 3, 11, 28, 20))
    assert analytic == executed > 0
    # the preset on the paper's 32 × 224 clip: far fewer attention MACs than joint 8×7×7 windows
    analytic, executed = _analytic_and_executed_macs(vac.build_model("swin_divided_st_t", device="meta"),
                                                     (1, 3, 32, 224, 224))
    assert analytic == executed == 2_974_433_280


def test_native_checkpoint_round_trip_and_swin3d_weights_refused(tmp_path):
    model = _small()
    path = tmp_path / "divided.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    fresh = _small()
    assert vac.load_checkpoint(fresh, path).layout == "native"
    x = torch.randn(1, 3, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
    joint = vac.build_model("swin3d_t", embed_dim=16, depths=(2, 2), num_heads=(2, 4), num_classes=7)
    with pytest.raises(vac.CheckpointError, match="missing .*temporal"):
        vac.load_checkpoint(model, joint.state_dict())


@pytest.mark.parametrize("name", ["swin_divided_st_t", "swin_divided_st_s", "swin_divided_st_b"])
def test_presets_build_on_meta_for_their_clip(name):
    model = vac.build_model(name, device="meta")
    with torch.no_grad():
        out = model(torch.zeros(model.config.input_shape(batch=2), device="meta"))
    assert out.shape == (2, 400)


@pytest.mark.parametrize("overrides, field, words", [
    (dict(window_size=(8, 7, 7)), "window_size", "of length 2"),
    (dict(num_heads=(3, 6, 12)), "num_heads", "one entry per stage"),
    (dict(embed_dim=64, num_heads=(3, 6, 12, 24)), "num_heads", "does not divide"),
    (dict(num_frames=0), "num_frames", "from 1"),
])
def test_impossible_configs_raise_config_error(overrides, field, words):
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model("swin_divided_st_t", device="meta", **overrides)
    assert info.value.field == field
    assert field in str(info.value) and words in str(info.value)


def test_wrong_input_says_what_is_expected():
    with pytest.raises(ValueError, match=r"expected a float tensor \(B, C, T, H, W\) with C=3"):
        _small()(torch.randn(3, 8, 32, 32))
