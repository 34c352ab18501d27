"""Figure builders: the numbers handed in are the numbers drawn."""

import numpy as np
import plotly.graph_objects as go
import pytest

from videoattn_core import figures


def test_cost_breakdown_sums_categories_groups_and_layers():
    rows = [
        {"name": "patch_embed.proj", "category": "embedding", "params": 100},
        {"name": "blocks.0.attn.qkv", "category": "attention", "params": 30},
        {"name": "blocks.0.attn.proj", "category": "attention", "params": 10},
        {"name": "blocks.0.mlp.fc1", "category": "mlp", "params": 50},
        {"name": "blocks.1.attn.qkv", "category": "attention", "params": 30},
        {"name": "norm", "category": "norm", "params": 0},
    ]
    fig = figures.cost_breakdown(rows, "params")
    trace = fig.data[0]
    assert isinstance(trace, go.Sunburst)
    values = dict(zip(trace.ids, trace.values))
    assert values["attention"] == 70
    assert values["attention/blocks.0"] == 40
    assert values["attention/blocks.0/blocks.0.attn.qkv"] == 30
    assert values["embedding"] == 100
    assert "norm" not in values  # zero-cost layers are left out
    # every parent exists, so the sunburst is a proper tree
    assert all(p == "" or p in values for p in trace.parents)


def test_category_bars_are_percentages():
    fig = figures.category_bars({"params": {"attention": 1, "mlp": 3}, "MACs": {"attention": 2, "mlp": 2}})
    shares = {bar.name: list(bar.x) for bar in fig.data}
    assert shares["attention"] == [25.0, 50.0]
    assert shares["mlp"] == [75.0, 50.0]


def test_cost_curves_one_line_per_series_and_dashed_alternatives():
    fig = figures.cost_curves({"joint": ([8, 16], [1e9, 4e9]), "divided": ([8, 16], [1e9, 2e9])},
                              x_title="frames", y_title="MACs", dashed=["divided"], marker_x=8)
    assert [t.name for t in fig.data] == ["joint", "divided"]
    assert fig.data[0].line.dash == "solid" and fig.data[1].line.dash == "dash"
    assert list(fig.data[0].y) == [1e9, 4e9]
    assert fig.layout.yaxis.type == "log"


def test_topk_bar_puts_the_best_class_on_top():
    fig = figures.topk_bar(["a", "b", "c"], [0.5, 0.3, 0.2])
    assert list(fig.data[0].y) == ["c", "b", "a"]  # plotly draws the last category at the top
    assert list(fig.data[0].x) == [0.2, 0.3, 0.5]


def test_attention_overlay_draws_each_frame_with_its_token_slice_and_boxes():
    frames = np.zeros((4, 32, 48, 3), dtype=np.uint8)
    heat = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3)  # 2 temporal slices over 4 frames
    heat[1, 0, 0] = np.nan
    fig = figures.attention_overlay(frames, heat, boxes=[(1, 2, 0, 1, 1, 3)], query=(1, 0, 2))
    images = [t for t in fig.data if isinstance(t, go.Image)]
    maps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(images) == len(maps) == 4
    assert all(img.source.startswith("data:image/png;base64,") for img in images)
    np.testing.assert_array_equal(np.asarray(maps[0].z, dtype=float), heat[0])  # frames 0, 1 -> slice 0
    np.testing.assert_array_equal(np.asarray(maps[3].z, dtype=float), heat[1])  # frames 2, 3 -> slice 1
    # each token covers a 16×16 block of pixels
    assert maps[0].dx == 16 and maps[0].dy == 16
    # the box spans slice 1 only: frames 2 and 3, plus the query marker on those frames
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 4
    assert {(r.x0, r.x1, r.y0, r.y1) for r in rects} == {(16, 48, 0, 16), (32, 48, 0, 16)}
    # one shared colour scale over the finite values
    assert maps[0].zmin == 0 and maps[0].zmax == 11


def test_token_time_index_maps_frames_to_tubelets():
    assert [figures.token_time_index(f, 16, 8) for f in range(16)] == [f // 2 for f in range(16)]
    assert [figures.token_time_index(f, 8, 8) for f in range(8)] == list(range(8))


def test_temporal_matrix_and_bias_tables():
    matrix = np.eye(4) * 0.7 + 0.075
    fig = figures.temporal_matrix(matrix, highlight=2)
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), matrix)
    assert tuple(fig.layout.yaxis.range) == (3.5, -0.5)  # query frame 0 on top
    fig = figures.bias_tables({"block 0": np.ones((15, 3)), "block 1": np.zeros(15)})
    assert len(fig.data) == 2 and np.asarray(fig.data[1].z).shape == (15, 1)


def test_grouped_bars_and_token_counts():
    fig = figures.grouped_bars(["a", "b"], {"params": [1e6, 2e6]}, y_title="count")
    assert list(fig.data[0].y) == [1e6, 2e6] and list(fig.data[0].text) == ["1.0 M", "2.0 M"]
    fig = figures.token_counts({"m": [("stage 1", 100), ("stage 2", 25)]})
    assert list(fig.data[0].y) == [100, 25]


@pytest.mark.parametrize("n,expected", [(121_566_352, "121.6 M"), (950, "950"), (1.5e12, "1.5 T")])
def test_human(n, expected):
    assert figures.human(n) == expected


def test_frames_strip_has_one_image_per_frame():
    fig = figures.frames_strip(np.zeros((6, 8, 8, 3), dtype=np.uint8), columns=4)
    assert sum(isinstance(t, go.Image) for t in fig.data) == 6
