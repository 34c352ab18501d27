"""Attention laid back onto the token grid, checked against independent computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import videoattn_core as vac
from videoattn_core.attention.maps import (attention_map, capture_all, rollout, rollout_unavailable_reason,
    temporal_matrix)
from videoattn_core.models.layers import AttentionCore, AttentionLayout, CapturedAttention

T, H, W = 4, 3, 3


def _capture(model, x):
    """Every AttentionCore's captured probabilities, by owner module name, in execution order."""
    captured = {}
    for name, module in model.named_modules():
        if isinstance(module, AttentionCore):
            owner = name.rsplit(".core", 1)[0]
            module.sink = lambda c, owner=owner: captured.setdefault(owner, c)
    with torch.no_grad():
        model(x)
    for module in model.modules():
        if isinstance(module, AttentionCore):
            module.sink = None
    return captured


def _model(attention_type, depth=2):
    return vac.build_model("timesformer_base", embed_dim=32, depth=depth, num_heads=2, num_frames=T, img_size=24,
                           patch_size=8, num_classes=5, attention_type=attention_type)


def test_divided_space_cls_and_patch_maps():
    model = _model("divided_space_time")
    captured = _capture(model, torch.randn(2, 3, T, 24, 24))
    space = captured["blocks.1.attn"]
    assert space.kind == "space" and space.probs.shape == (2 * T, 2, 1 + H * W, 1 + H * W)
    amap = attention_map(space, query="cls", head=None, batch=1)
    probs = space.probs.mean(dim=1)
    for t in range(T):  # group (b t) = 1·T + t holds clip 1, frame t
        np.testing.assert_allclose(amap.values[t], probs[T + t, 0, 1:].reshape(H, W).numpy(), rtol=1e-6)
    np.testing.assert_allclose(amap.cls_weight, probs[T:, 0, 0].mean().item(), rtol=1e-6)

    patch = attention_map(space, query=(2, 1, 0), head=1, batch=0)
    assert np.isnan(patch.values[[0, 1, 3]]).all()
    np.testing.assert_allclose(patch.values[2], space.probs[2, 1, 1 + 1 * W + 0, 1:].reshape(H, W), rtol=1e-6)
    every_frame = attention_map(space, query=(None, 1, 0), head=1)
    assert not np.isnan(every_frame.values).any()


def test_divided_time_row_and_matrix():
    model = _model("divided_space_time")
    captured = _capture(model, torch.randn(1, 3, T, 24, 24))
    time = captured["blocks.0.temporal_attn"]
    assert time.kind == "time" and time.probs.shape == (H * W, 2, T, T)
    matrix = temporal_matrix(time, (2, 1), head=0)
    np.testing.assert_allclose(matrix, time.probs[2 * W + 1, 0].numpy(), rtol=1e-6)
    row = attention_map(time, query=(3, 2, 1), head=0)
    np.testing.assert_allclose(row.values[:, 2, 1], matrix[3], rtol=1e-6)
    assert np.isnan(row.values[:, 0, 0]).all()
    with pytest.raises(ValueError, match="no CLS token"):
        attention_map(time, query="cls")
    with pytest.raises(ValueError, match="outside"):
        attention_map(time, query=(0, 5, 0))
    with pytest.raises(ValueError, match="head must be from 0 to 1"):
        attention_map(time, query=(0, 0, 0), head=7)


def test_joint_map_follows_the_official_token_order():
    model = _model("joint_space_time")
    captured = _capture(model, torch.randn(1, 3, T, 24, 24))
    joint = captured["blocks.1.attn"]
    amap = attention_map(joint, query=(1, 2, 0), head=0)
    row = joint.probs[0, 0, 1 + (2 * W + 0) * T + 1, 1:]  # tokens ordered (h w t)
    expected = row.reshape(H, W, T).permute(2, 0, 1)
    np.testing.assert_allclose(amap.values, expected.numpy(), rtol=1e-6)
    total = np.nansum(amap.values) + amap.cls_weight
    assert abs(total - 1) < 1e-5


def test_shifted_windows_undo_the_shift_and_mark_borders():
    grid, window, shift, padded = (3, 5, 5), (2, 3, 3), (1, 1, 1), (4, 6, 6)
    layout = AttentionLayout("window", grid, "(b nw)", "(wt wh ww)", window=window, shift=shift, padded_grid=padded)
    n_windows, n = 2 * 2 * 2, 2 * 3 * 3
    probs = torch.rand(n_windows, 1, n, n).softmax(-1)
    captured = CapturedAttention(probs, layout)

    def window_of(cell):  # independent: which shifted window a cell falls in
        return tuple(((c - s) % p) // w for c, s, p, w in zip(cell, shift, padded, window))

    query = (0, 4, 0)
    amap = attention_map(captured, query=query, head=0)
    for cell in itertools.product(*map(range, grid)):
        same = window_of(cell) == window_of(query)
        assert np.isnan(amap.values[cell]) != same, cell
    # the wrapped-around window is drawn as separate boxes
    assert len(amap.boxes) >= 2
    covered = {c for b in amap.boxes for c in itertools.product(range(b[0], b[1]), range(b[2], b[3]),
                                                                  range(b[4], b[5]))}
    assert covered == {c for c in itertools.product(*map(range, grid)) if window_of(c) == window_of(query)}


def test_pooled_map_lands_on_the_kv_grid():
    layout = AttentionLayout("pooled", (8, 8, 8), "b", "(t h w)", cls=True, q_grid=(8, 4, 4), kv_grid=(8, 2, 2))
    probs = torch.rand(1, 2, 1 + 8 * 4 * 4, 1 + 8 * 2 * 2).softmax(-1)
    amap = attention_map(CapturedAttention(probs, layout), query=(3, 1, 2), head=1)
    assert amap.grid == (8, 2, 2)
    np.testing.assert_allclose(amap.values.reshape(-1), probs[0, 1, 1 + 3 * 16 + 1 * 4 + 2, 1:].numpy(), rtol=1e-6)
    assert "pooled to 8×2×2" in amap.note


def test_cross_attention_map_lays_each_learned_query_over_the_key_grid():
    """Learned queries (V-JEPA 2's pooler) sit on no cell: "cls" selects them (their mean when several), and each
    one's row lands on the (t h w) key grid of its own clip."""
    layout = AttentionLayout("cross", (2, 3, 4), "b", "(t h w)", queries=2)
    probs = torch.rand(2, 3, 2, 24).softmax(-1)  # (B, heads, queries, T·H·W)
    captured = CapturedAttention(probs, layout)
    amap = attention_map(captured, query="cls", head=1, batch=1)
    assert amap.grid == (2, 3, 4) and amap.cls_weight is None
    np.testing.assert_allclose(amap.values, probs[1, 1].mean(0).reshape(2, 3, 4).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="learned tokens"):
        attention_map(captured, query=(0, 0, 0))


def _full_matrix(captured, size):
    """Independent rollout helper: one layer's head-averaged attention as a dense (size+1)² matrix with CLS
    last; tokens not attending in the layer keep an identity row; a CLS repeated across groups averages."""
    from videoattn_core.attention.maps import token_coordinates
    probs = captured.probs.double().mean(1)
    q = token_coordinates(captured.layout, 1)
    a = torch.zeros(size + 1, size + 1, dtype=torch.float64)
    hits = torch.zeros(size + 1, dtype=torch.float64)
    for g in range(q.shape[0]):
        for i, qi in enumerate(q[g].tolist()):
            qi = size if qi == -2 else qi
            hits[qi] += 1
            for j, kj in enumerate(q[g].tolist()):
                a[qi, size if kj == -2 else kj] += probs[g, i, j]
    a = a / hits.clamp(min=1)[:, None]
    a[hits == 0, hits == 0] = 1.0
    return 0.5 * torch.eye(size + 1, dtype=torch.float64) + 0.5 * a


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
def test_rollout_equals_the_product_of_dense_matrices(attention_type):
    model = _model(attention_type, depth=3)
    x = torch.randn(1, 3, T, 24, 24)
    captured = capture_all(model, x)
    size = T * H * W
    product = torch.eye(size + 1, dtype=torch.float64)
    for c in captured:
        product = _full_matrix(c, size) @ product
    expected = product[size, :size]
    expected = (expected / expected.sum()).reshape(T, H, W)  # token coordinates are canonical (t h w) cells
    ours = rollout(model, x)
    assert ours.shape == (T, H, W) and abs(ours.sum() - 1) < 1e-5
    np.testing.assert_allclose(ours, expected.float().numpy(), rtol=1e-4, atol=1e-7)


def test_rollout_reasons():
    assert rollout_unavailable_reason(_model("space_only")) is None
    layout_free = torch.nn.Linear(2, 2)
    assert "no attention" in rollout_unavailable_reason(layout_free)


def test_swin_bias_table_arranged_by_offset():
    from videoattn_core.attention.maps import relative_position_tables
    from videoattn_core.models.windows import relative_position_index

    model = vac.build_model("swin3d_t", depths=(1, 1, 1, 1), window_size=(4, 3, 3), num_frames=8, img_size=32)
    attn = model.layers[0].blocks[0].attn
    with torch.no_grad():
        attn.relative_position_bias_table.copy_(torch.randn_like(attn.relative_position_bias_table))
    plane, profile = relative_position_tables(attn, dt=1)
    assert plane.x_offsets == [-2, -1, 0, 1, 2] and plane.y_offsets == [-2, -1, 0, 1, 2]
    assert profile.x_offsets == [-3, -2, -1, 0, 1, 2, 3]
    # independent: query (t=1, y=2, x=0) and key (t=0, y=0, x=1) are offset (1, 2, −1) apart
    index = relative_position_index((4, 3, 3))
    q, k = 1 * 9 + 2 * 3 + 0, 0 * 9 + 0 * 3 + 1
    table = attn.relative_position_bias_table.detach()
    assert plane.panels["head 2"][2 + 2, -1 + 2] == pytest.approx(float(table[index[q, k], 2]))
    same_place = 3 * 9 + 1 * 3 + 1, 1 * 9 + 1 * 3 + 1  # Δt = 2, Δh = Δw = 0
    assert profile.panels["Δh = Δw = 0"][1, 2 + 3] == pytest.approx(float(table[index[same_place], 1]))
    with pytest.raises(ValueError, match="dt must be from -3 to 3"):
        relative_position_tables(attn, dt=5)


def test_temporal_and_decomposed_tables():
    from videoattn_core.attention.maps import relative_position_tables

    model = vac.build_model("timesformer_base", embed_dim=32, depth=1, num_heads=2, num_frames=T, img_size=24,
                            patch_size=8, temporal_relative_bias=True)
    (table,) = relative_position_tables(model.blocks[0].temporal_attn)
    assert table.panels["all heads"].shape == (2, 2 * T - 1) and table.x_offsets[0] == -(T - 1)
    mvit = vac.build_model("mvit_v2_s", depths=(1, 1, 1, 1), img_size=64, num_frames=4)
    names = {t.name for t in relative_position_tables(mvit.blocks[0].attn)}
    assert names == {"rel_pos_h", "rel_pos_w", "rel_pos_t"}


def test_rollout_refusals_name_the_real_reason():
    divided = vac.build_model("swin_divided_st_t", num_frames=4, img_size=64)
    with pytest.raises(ValueError, match="patch merging changes the token set"):
        rollout(divided, torch.randn(1, 3, 4, 64, 64))
