"""Analytic MAC formulas: fvcore's convention per module kind, and the closed forms per attention kind.

Each module formula is checked against ``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 × MACs of
matmul and convolution kernels) on real modules, and each attention closed form against the MACs the inspection
engine counts from the shapes of every attention call of real presets.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import videoattn_core as vac
from videoattn_core.cost import flops
from videoattn_core.models.layers import AttentionCore, AttentionLayout


def measured_macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


@pytest.mark.parametrize("module, shape", [
    (nn.Linear(24, 40), (3, 7, 24)),
    (nn.Linear(24, 40, bias=False), (5, 24)),
    (nn.Conv2d(6, 12, 3, stride=2, padding=1), (2, 6, 17, 15)),
    (nn.Conv2d(12, 12, 3, padding=1, groups=12), (2, 12, 9, 9)),   # depthwise
    (nn.Conv3d(8, 16, (3, 3, 3), stride=(1, 2, 2), padding=1, groups=4), (2, 8, 5, 11, 11)),
    (nn.Conv1d(4, 6, 5), (3, 4, 20)),
    (nn.ConvTranspose2d(6, 4, 2, stride=2), (2, 6, 5, 5)),
])
def test_module_formulas_match_flop_counter(module, shape):
    x = torch.randn(shape)
    out = module(x)
    analytic = flops.module_macs(module, (x,), out)
    assert analytic == measured_macs(module, x)
    assert analytic > 0


def test_grouped_conv_counts_weight_per_group():
    dense, grouped = nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3, groups=8)
    x = torch.randn(1, 8, 10, 10)
    assert flops.module_macs(dense, (x,), dense(x)) == 8 * flops.module_macs(grouped, (x,), grouped(x))


def test_normalization_follows_fvcore():
    # fvcore norm_flop_counter: 5 per element with an affine transform, 4 without; batch norm in eval 2 / 1
    x = torch.randn(2, 10, 16)
    assert flops.module_macs(nn.LayerNorm(16), (x,), x) == 5 * x.numel()
    assert flops.module_macs(nn.LayerNorm(16, elementwise_affine=False), (x,), x) == 4 * x.numel()
    assert flops.module_macs(nn.GroupNorm(2, 10), (x,), x) == 5 * x.numel()
    bn = nn.BatchNorm1d(10).eval()
    assert flops.module_macs(bn, (x,), x) == 2 * x.numel()
    assert flops.module_macs(nn.BatchNorm1d(10, affine=False).eval(), (x,), x) == x.numel()
    assert flops.module_macs(bn.train(), (x,), x) == 5 * x.numel()


def test_uncounted_modules_count_zero():
    x = torch.randn(2, 4, 8, 8)
    for module in (nn.GELU(), nn.Softmax(-1), nn.AvgPool2d(2), nn.MaxPool2d(2), nn.Dropout(), nn.Identity()):
        assert not flops.module_macs(module, (x,), module(x))


def test_module_flop_count_is_honoured():
    class Custom(nn.Module):
        def forward(self, x):
            return x * 2

        def flop_count(self, inputs, output):
            return 7 * inputs[0].numel()

    x = torch.randn(3, 5)
    assert flops.module_macs(Custom(), (x,), x * 2) == 105


def test_matmul_and_attention_formulas():
    a, b = torch.randn(2, 3, 5, 7), torch.randn(7, 4)
    assert flops.matmul_macs(a.shape, b.shape) == measured_macs(torch.matmul, a, b)
    q, k, v = torch.randn(6, 4, 10, 8), torch.randn(6, 4, 13, 8), torch.randn(6, 4, 13, 5)

    def explicit(q, k, v):
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v

    assert flops.attention_macs(q.shape, k.shape, v.shape) == measured_macs(explicit, q, k, v)
    assert flops.attention_macs(q.shape, k.shape, v.shape) == 6 * 4 * 10 * 13 * (8 + 5)


def test_attention_core_counts_the_same_on_both_paths():
    core = AttentionCore("joint", 0.125)
    q = torch.randn(2, 3, 9, 8)
    fused = measured_macs(core, q, q, q)
    core.fused = False
    assert fused in (0, measured_macs(core, q, q, q))  # the CPU flash kernel has no formula in FlopCounterMode
    assert flops.module_macs(core, (q, q, q), q) == measured_macs(core, q, q, q)


def test_closed_forms():
    # joint: 2·B·N²·C; divided: time 2·B·HW·T²·C and space 2·B·T·(HW+1)²·C
    assert flops.joint_attention_macs(1, 1 + 8 * 196, 768) == 2 * 1569 ** 2 * 768
    div = flops.divided_attention_macs(1, 8, 196, 768)
    assert div == {"time": 2 * 196 * 64 * 768, "space": 2 * 8 * 197 ** 2 * 768}
    # 3D windows with padding: a 5×10×10 grid in 2×7×7 windows pads to 6×14×14, 3·2·2 windows of 98 tokens
    assert flops.window_grid((5, 10, 10), (2, 7, 7)) == ((2, 7, 7), (6, 14, 14))
    assert flops.window3d_attention_macs(1, (5, 10, 10), (2, 7, 7), 32) == 2 * 12 * 98 ** 2 * 32
    # a window larger than the grid shrinks to it (no padding)
    assert flops.window_grid((4, 3, 3), (8, 7, 7)) == ((4, 3, 3), (4, 3, 3))
    # pooled: queries on the q grid, keys on the kv grid, both with the CLS token
    assert flops.pooled_attention_macs(2, (8, 28, 28), (8, 7, 7), 192) == 2 * 2 * 6273 * 393 * 192
    # the seed code's WindowAttention.flops(N, T, temporal)
    assert flops.window2d_temporal_attention_macs(49, 8, 96, 3) == 3 * 49 * 32 * 49 * 8 * 2
    assert flops.window2d_temporal_attention_macs(49, 8, 96, 3, temporal=True) == 96 * 49 * 8 * 8 * 2


def _core_records(summary):
    return [r for r in summary.layers if r.type == "AttentionCore"]


SUMMARY_CASES = [  # (label, preset, overrides); Video Swin at 160 px so that windows need padding
    ("timesformer_base", "timesformer_base", {}),
    ("timesformer_joint", "timesformer_base", {"attention_type": "joint_space_time"}),
    ("timesformer_space", "timesformer_base", {"attention_type": "space_only"}),
    ("mvit_v1_b", "mvit_v1_b", {}),
    ("mvit_v2_s", "mvit_v2_s", {}),
    ("swin3d_t", "swin3d_t", {}),
    ("swin_divided_st_t", "swin_divided_st_t", {}),
    ("vivit_b", "vivit_b", {}),
    ("vivit_b_fe", "vivit_b_fe", {}),
    ("vivit_b_fsa", "vivit_b_fsa", {}),
    ("vivit_b_fdp", "vivit_b_fdp", {}),
    ("videomae_base", "videomae_base", {}),
    ("vjepa2_vitl", "vjepa2_vitl", {"depth": 2, "predictor_depth": 0}),
]


@pytest.fixture(scope="module")
def summaries():
    present = set(vac.list_models())
    return {label: vac.summarize(preset, size=160 if preset.startswith("swin") else None, **overrides)
            for label, preset, overrides in SUMMARY_CASES if preset in present}


def test_layout_formula_matches_every_attention_call(summaries):
    """For every attention core of every family present, the MACs from its AttentionLayout alone equal the
    MACs counted from its actual q, k, v shapes (windows with padding, pooled grids, CLS tokens)."""
    assert summaries
    for label, summary in summaries.items():
        for rec in _core_records(summary):
            q, k, v = rec.input_shapes[:3]
            dim, dim_v = q[1] * q[3], v[1] * v[3]
            expected = flops.layout_attention_macs(rec.attention_layout, summary.batch, dim, dim_v)
            assert rec.macs == rec.calls * expected, (label, rec.name, rec.attention_layout)


def test_timesformer_closed_forms_match_the_model(summaries):
    cfg = summaries["timesformer_base"].config
    n = cfg.grid_size ** 2
    div = flops.divided_attention_macs(1, cfg.num_frames, n, cfg.embed_dim)
    cores = _core_records(summaries["timesformer_base"])
    assert sum(r.macs for r in cores if r.attention_kind == "time") == cfg.depth * div["time"]
    assert sum(r.macs for r in cores if r.attention_kind == "space") == cfg.depth * div["space"]
    joint = _core_records(summaries["timesformer_joint"])
    assert sum(r.macs for r in joint) == cfg.depth * flops.joint_attention_macs(
        1, 1 + cfg.num_frames * n, cfg.embed_dim)
    space = _core_records(summaries["timesformer_space"])
    assert sum(r.macs for r in space) == cfg.depth * div["space"]


def test_window_closed_forms_match_video_swin(summaries):
    if "swin3d_t" not in summaries:
        pytest.fail("swin3d_t is not registered")
    summary = summaries["swin3d_t"]  # 160 px: a 40×40 grid, padded to 42×42 by 7×7 windows in stage 1
    padded = False
    for rec in _core_records(summary):
        lay = rec.attention_layout
        q = rec.input_shapes[0]
        assert rec.macs == flops.window3d_attention_macs(1, lay.grid, lay.window, q[1] * q[3])
        padded |= tuple(lay.padded_grid) != tuple(lay.grid)
    assert padded, "the 160 px case must exercise padding"


def test_seed_window_formula_matches_divided_swin(summaries):
    if "swin_divided_st_t" not in summaries:
        pytest.fail("swin_divided_st_t is not registered")
    for rec in _core_records(summaries["swin_divided_st_t"]):
        lay = rec.attention_layout
        q = rec.input_shapes[0]
        dim, heads = q[1] * q[3], q[1]
        t, h, w = lay.grid
        if rec.attention_kind == "time":
            # each of the H·W positions of a window grid attends over T frames: windows × seed count
            windows, tokens = 1, h * w
            expected = flops.window2d_temporal_attention_macs(tokens, t, dim, heads, temporal=True)
        else:
            _, wh, ww = lay.window
            ph, pw = lay.padded_grid[1:]
            windows = (ph // wh) * (pw // ww)
            expected = windows * flops.window2d_temporal_attention_macs(wh * ww, t, dim, heads)
        assert rec.macs == expected, rec.name


def test_pooled_closed_form_matches_mvit(summaries):
    for label in ("mvit_v1_b", "mvit_v2_s"):
        if label not in summaries:
            pytest.fail(f"{label} is not registered")
        for rec in _core_records(summaries[label]):
            lay = rec.attention_layout
            q = rec.input_shapes[0]
            assert rec.macs == flops.pooled_attention_macs(1, lay.q_grid, lay.kv_grid, q[1] * q[3], lay.cls)
            assert math.prod(lay.kv_grid) <= math.prod(lay.grid) and math.prod(lay.q_grid) <= math.prod(lay.grid)


def test_layout_formula_handles_each_kind():
    lay = AttentionLayout("space", (8, 14, 14), "(b t)", "(h w)", cls=True)
    assert flops.layout_attention_macs(lay, 2, 768) == 2 * 8 * 197 ** 2 * 2 * 768
    lay = AttentionLayout("time", (8, 14, 14), "(b h w)", "t")
    assert flops.layout_attention_macs(lay, 1, 768) == 196 * 64 * 2 * 768
    lay = AttentionLayout("window", (5, 10, 10), "(b nw)", "(wt wh ww)", window=(2, 7, 7), shift=(1, 3, 3),
                          padded_grid=(6, 14, 14))
    assert flops.layout_attention_macs(lay, 1, 32) == flops.window3d_attention_macs(1, (5, 10, 10), (2, 7, 7), 32)
    lay = AttentionLayout("pooled", (8, 56, 56), "b", "(t h w)", cls=True, q_grid=(8, 28, 28), kv_grid=(8, 7, 7))
    assert flops.layout_attention_macs(lay, 1, 192) == flops.pooled_attention_macs(1, (8, 28, 28), (8, 7, 7), 192)
    lay = AttentionLayout("cross", (8, 16, 16), "b", "(t h w)", queries=1)  # V-JEPA 2's pooler: 1 learned query
    assert flops.layout_attention_macs(lay, 2, 1024) == 2 * 1 * 2048 * 2 * 1024


def test_sdpa_kernel_formula_counts_like_explicit_attention():
    q = torch.randn(2, 3, 11, 8)
    analytic = flops.attention_macs(q.shape, q.shape, q.shape)
    from videoattn_core.inspection.measured import _flop_counter

    counter = _flop_counter()
    with counter:
        F.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 2 * analytic
