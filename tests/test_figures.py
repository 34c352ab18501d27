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


# ------------------------------------------------------------------------------------------------ colours

# Streamlit's chart theme replaces these strings anywhere in a figure's JSON with its own colours (#000004 with
# #ffabab): what a figure must not contain for its colours to reach the browser as drawn
STREAMLIT_PLACEHOLDERS = [f"#0000{i:02d}" for i in range(1, 41)]
INFERNO_DARK_END = (0, 0, 4)


def _rgb(color: str) -> tuple[int, int, int]:
    from plotly.colors import hex_to_rgb, unlabel_rgb

    return tuple(int(v) for v in (hex_to_rgb(color) if color.startswith("#") else unlabel_rgb(color)))


def _heat_figures():
    frames = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    heat = np.random.default_rng(0).random((2, 4, 4))
    return {"attention_overlay": figures.attention_overlay(frames, heat),
            "temporal_matrix": figures.temporal_matrix(np.random.default_rng(1).random((4, 4))),
            "explanation_animation": figures.explanation_animation(frames,
                                                                   np.random.default_rng(2).random((4, 16, 16)))}


@pytest.mark.parametrize("builder", ["attention_overlay", "temporal_matrix", "explanation_animation"])
def test_heat_maps_start_at_the_dark_end_in_colours_streamlits_theme_leaves_alone(builder):
    fig = _heat_figures()[builder]
    text = fig.to_json()
    assert not [p for p in STREAMLIT_PLACEHOLDERS if p in text], "Streamlit's theme would repaint these colours"
    for trace in fig.data:
        if isinstance(trace, go.Heatmap):
            scale = [(stop, _rgb(color)) for stop, color in trace.colorscale]
            assert scale[0] == (0.0, INFERNO_DARK_END) and scale[-1][0] == 1.0
            # the whole scale is Inferno, dark to bright
            from plotly.colors import sequential
            assert [c for _, c in scale] == [_rgb(c) for c in sequential.Inferno]


def test_every_layout_rewrites_a_colour_scale_streamlits_theme_would_repaint():
    fig = figures.temporal_matrix(np.eye(3))
    fig.data[0].colorscale = "Inferno"  # a builder that names Plotly's scale
    fig = figures.frames.base_layout(fig)
    assert "#000004" not in fig.to_json() and _rgb(fig.data[0].colorscale[0][1]) == INFERNO_DARK_END


def test_near_constant_maps_say_so_and_are_not_stretched():
    """A Swin relevance map of 19.932–19.933 µ: the colour bar says "nearly constant" with its measured spread,
    and the map's spread takes a tiny part of the colour range (one colour), not all of it."""
    base, noise = 19.9325e-6, 1e-9
    heat = base + noise * np.random.default_rng(0).random((2, 4, 4))
    frames = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    spread = float(heat.max() - heat.min())
    for fig in (figures.attention_overlay(frames, heat, color_title="relevance"),
                figures.explanation_animation(frames, np.repeat(heat, 2, axis=0).repeat(4, 1).repeat(4, 2),
                                              color_title="relevance"),
                figures.temporal_matrix(heat[0])):
        trace = next(t for t in fig.data if isinstance(t, go.Heatmap))
        title = trace.colorbar.title.text
        assert "nearly constant" in title and f"{spread / heat.mean():.0e}" in title, title
        assert trace.zmin <= heat.min() and trace.zmax >= heat.max()
        assert spread / (trace.zmax - trace.zmin) < 1e-3
    # a constant map (Grad-CAM's zeros) is one colour, said to be constant
    zeros = figures.explanation_animation(frames, np.zeros((4, 16, 16)), color_title="gradcam")
    assert "constant: 0" in zeros.data[1].colorbar.title.text and zeros.data[1].zmin < 0 < zeros.data[1].zmax
    # a map that varies keeps its full range and its plain title
    varied = figures.attention_overlay(frames, np.arange(32.0).reshape(2, 4, 4))
    assert (varied.data[1].zmin, varied.data[1].zmax) == (0.0, 31.0)
    assert varied.data[1].colorbar.title.text == "attention"


def test_family_colours_are_fixed_whatever_the_dataset_shows():
    import videoattn_core as vac

    families = sorted({vac.get_preset(m).config.family for m in vac.list_models()})
    assert set(families) <= set(figures.FAMILY_COLORS)
    assert len(set(figures.FAMILY_COLORS.values())) == len(figures.FAMILY_COLORS)  # one colour per family

    def colours(groups):
        fig = figures.zoo_scatter({g: [{"name": f"{g}.x", "x": 1.0, "y": 50.0, "hover": g}] for g in groups}, [],
                                  x_title="MACs")
        return {t.name: t.marker.color for t in fig.data}

    k400, ssv2 = colours(["timesformer", "mvit", "swin3d", "videomae"]), colours(["swin3d", "mvit", "vjepa2"])
    for family in ("mvit", "swin3d"):
        assert k400[family] == ssv2[family] == figures.FAMILY_COLORS[family]
    assert figures.family_color("swin3d") == figures.FAMILY_COLORS["swin3d"]
    # the same colours on Compare's bars and lines and Side by side's top-k bars
    bars = figures.grouped_bars(["a", "b"], {"params": [1.0, 2.0]}, y_title="n",
                                colors=[figures.family_color("swin3d"), figures.family_color("mvit")])
    assert list(bars.data[0].marker.color) == [figures.FAMILY_COLORS["swin3d"], figures.FAMILY_COLORS["mvit"]]
    lines = figures.token_counts({"a": [("s", 1)], "b": [("s", 2)]}, colors=[figures.FAMILY_COLORS["mvit"]] * 2)
    assert {t.line.color for t in lines.data} == {figures.FAMILY_COLORS["mvit"]}
    assert len({t.line.dash for t in lines.data}) == 2  # two configs of one family: one colour, two dashes
    top = figures.topk_bar(["a"], [0.5], color=figures.family_color("vivit"))
    assert top.data[0].marker.color == figures.FAMILY_COLORS["vivit"]


def test_head_statistics_give_sixteen_heads_sixteen_colours():
    heads = 16
    stats = {"entropy": np.random.default_rng(0).random((3, heads))}
    fig = figures.head_statistics(["a", "b", "c"], stats)
    colours = [t.marker.color for t in fig.data]
    assert len(colours) == heads and len(set(colours)) == heads
    assert colours[10] != colours[0]
    assert not [p for p in STREAMLIT_PLACEHOLDERS if p in fig.to_json()]


def test_bars_of_one_chart_share_one_number_format_and_stand_upright():
    fig = figures.grouped_bars(["1. timesformer_base;attention_type=joint_space_time", "2. mvit_v2_s"],
                               {"forward time (ms)": [1600.0, 422.664]}, y_title="ms")
    assert list(fig.data[0].text) == ["1,600", "423"]
    assert fig.layout.xaxis.tickangle == 0 and "<br>" in fig.data[0].x[0]
    assert figures.shared_format([28e6, 5.1e9]) == ["0.028 G", "5.100 G"]
    assert figures.shared_format([1e6, None]) == ["1.0 M", "–"]


def test_layer_times_label_the_layers_and_name_the_colours():
    names = ["patch_embed", "blocks.0.attn", "blocks.0.mlp", "head"]
    fig = figures.layer_times(names, [1.0, 2.0, 3.0, 0.5], ["embedding", "attention", "mlp", "head"])
    assert {t.name for t in fig.data} == {"embedding", "attention", "mlp", "head"}
    assert all(t.marker.color == figures.CATEGORY_COLORS[t.name] for t in fig.data)
    assert fig.layout.showlegend is True and fig.layout.xaxis.title.text
    assert list(fig.layout.xaxis.ticktext) == names
    many = figures.layer_times([f"l{i}" for i in range(30)], [1.0] * 30, ["mlp"] * 30)
    assert "hover" in many.layout.xaxis.title.text and len(many.data[0].x) == 30 and many.layout.xaxis.ticktext is None


@pytest.mark.parametrize("builder", ["frames_strip", "attention_overlay"])
def test_grid_rows_leave_room_for_the_next_rows_titles(builder):
    """A 16-frame grid of wide frames: each row's titles sit in the gap above it, which must be at least a line of
    text high (they covered the row above when the gap was a fixed fraction of a short figure)."""
    frames = np.zeros((16, 36, 64, 3), dtype=np.uint8)
    if builder == "frames_strip":
        fig = figures.frames_strip(frames)
    else:
        fig = figures.attention_overlay(frames, np.random.rand(8, 2, 4), show=list(range(16)), columns=8)
    layout = fig.layout
    plot_px = layout.height - layout.margin.t - layout.margin.b
    first, second = layout.yaxis.domain, layout[f"yaxis{1 + 8}"].domain  # the first plot of rows 1 and 2
    assert (first[0] - second[1]) * plot_px >= 20


def test_category_bars_keep_the_legend_off_the_axis_title():
    """The share chart's legend sits at the figure's bottom edge, in the margin under the axis title (placed just
    under the plot, it covered the "share (%)" title)."""
    fig = figures.category_bars({"params": {"attention": 3.0, "mlp": 5.0}, "MACs": {"attention": 2.0, "mlp": 1.0}})
    legend = fig.layout.legend
    assert legend.yref == "container" and legend.y == 0 and legend.yanchor == "bottom"
    assert fig.layout.margin.b >= 80 and fig.layout.xaxis.title.text == "share (%)"
