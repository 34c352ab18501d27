"""Colours as they reach the browser (``streamlit run`` + headless Chromium): what Streamlit's chart theme does to
a figure happens in the page, so the figures are read back from the page's Plotly graph divs.

- every heat map's colour scale starts at the scale's dark end (Inferno's ``#000004``), not at the theme's
  ``#ffabab`` that replaced it (attention, temporal matrix, rollout, Grad-CAM animation, side by side);
- the heads of a layer have distinct colours (head 10 is not head 0);
- a model family has one colour on every page and dataset (Zoo on Kinetics-400 and SSv2, Compare, Side by side);
- Compare's bars carry one number format under upright labels; the Run page's time per layer names its x axis
  and its colours.
"""

from __future__ import annotations

import re
import time

import pytest
from plotly.colors import hex_to_rgb, sequential, unlabel_rgb

pytest.register_assert_rewrite("browser_support")
from browser_support import assert_no_exception, wait_idle
from videoattn_core import figures

pytest_plugins = ["browser_support"]
pytestmark = pytest.mark.browser

#: every chart of the page with what its colours are in the browser
_READ_COLOURS = """() => {
  const plain = v => ArrayBuffer.isView(v) ? Array.from(v) : v;
  const text = t => t == null ? null : (typeof t === 'object' ? (t.text ?? null) : String(t));
  return [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
    title: text(gd.layout && gd.layout.title),
    xaxis: {title: text(gd.layout.xaxis && gd.layout.xaxis.title),
            tickangle: gd.layout.xaxis && gd.layout.xaxis.tickangle,
            ticktext: gd.layout.xaxis && gd.layout.xaxis.ticktext ? plain(gd.layout.xaxis.ticktext) : null},
    showlegend: gd._fullLayout.showlegend,
    traces: (gd.data || []).map(t => ({
      type: t.type, name: t.name ?? null, colorscale: t.colorscale ?? null,
      colorbar: text(t.colorbar && t.colorbar.title), text: t.text ? plain(t.text) : null,
      marker: t.marker ? plain(t.marker.color) ?? null : null, showlegend: t.showlegend ?? null,
      line: t.line ? t.line.color ?? null : null})),
    frames: ((gd._transitionData && gd._transitionData._frames) || []).map(
      f => (f.data || []).filter(t => t.type === 'heatmap').map(t => t.colorscale)),
  }));
}"""


def charts(page, ready=lambda shown: True, what: str = "the charts", timeout_s: float = 60) -> list[dict]:
    """The page's charts (titles as plain text), once ``ready`` says all that is wanted has been drawn."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = page.evaluate(_READ_COLOURS)
        for chart in shown:
            chart["title"] = re.sub(r"<[^>]+>", "", chart["title"] or "").strip()
        if ready(shown):
            return shown
        if time.monotonic() > deadline:
            pytest.fail(f"{what} never drawn; charts: {[c['title'] for c in shown]}")
        time.sleep(0.25)


def rgb(color) -> tuple[int, int, int]:
    assert isinstance(color, str) and color, f"no colour of its own ({color!r}): the theme's colourway picks one"
    color = color.strip()
    return tuple(int(round(float(v))) for v in (hex_to_rgb(color) if color.startswith("#") else unlabel_rgb(color)))


INFERNO = [rgb(c) for c in sequential.Inferno]


def assert_heat_scale(scale, what: str) -> None:
    """The scale as drawn is Inferno, its first stop the dark end (#000004), not the theme's #ffabab."""
    assert scale and not isinstance(scale, str), f"{what}: no explicit colour scale ({scale!r})"
    colours = [rgb(c) for _, c in scale]
    assert colours[0] == INFERNO[0], f"{what}: the lowest value is drawn in {scale[0][1]}, not Inferno's dark end"
    assert colours == INFERNO, f"{what}: {scale}"


def test_attention_maps_and_head_statistics_reach_the_browser_in_their_colours(server, page):
    page.goto(server + "/attention?model=timesformer_base&depth=2&img_size=64&layer=blocks.0.temporal_attn"
                       "&rollout=on&explain=gradcam&headstats=on")
    page.wait_for_selector("text=every head × layer")
    wait_idle(page)
    # the query's frame, every frame, the T×T matrix, the rollout, the Grad-CAM animation and the head statistics
    wanted = ("· frame 0", "every frame", "temporal attention at patch", "rolled out", "gradcam for",
              "every head × layer")
    shown = charts(page, lambda cs: all(any(w in c["title"] for c in cs) for w in wanted), "the attention maps")
    heat = [(c["title"], t) for c in shown for t in c["traces"] if t["type"] == "heatmap"]
    assert len(heat) >= 5
    for title, trace in heat:
        assert_heat_scale(trace["colorscale"], title)
    animated = [c for c in shown if c["frames"]]
    assert animated, "no animation on the page"
    for chart in animated:
        for f, scales in enumerate(chart["frames"]):
            for scale in scales:
                assert_heat_scale(scale, f"{chart['title']}, animation frame {f}")
    # head statistics: timesformer_base's 12 heads in 12 colours, each head's colour the figure module's
    stats = next(c for c in shown if c["title"] == "every head × layer")
    colour = {}
    for trace in stats["traces"]:
        colour.setdefault(trace["name"], set()).add(rgb(trace["marker"]))
    assert len(colour) == 12 and all(len(c) == 1 for c in colour.values())
    assert len({next(iter(c)) for c in colour.values()}) == 12, "two heads share a colour"
    assert colour["head 10"] != colour["head 0"]
    assert all(colour[f"head {h}"] == {rgb(figures.head_color(h))} for h in range(12))
    assert_no_exception(page)


def family_colours(chart) -> dict[str, tuple[int, int, int]]:
    return {t["name"]: rgb(t["marker"]) for t in chart["traces"] if t["name"] != "Pareto frontier"}


@pytest.mark.parametrize("dataset", ["kinetics400", "ssv2"])
def test_zoo_families_keep_their_colour_on_every_dataset(server, page, dataset):
    page.goto(f"{server}/zoo?dataset={dataset}" if dataset != "kinetics400" else f"{server}/zoo")
    wait_idle(page)
    is_zoo = lambda c: any(t["name"] == "Pareto frontier" for t in c["traces"])  # noqa: E731
    zoo = next(c for c in charts(page, lambda cs: any(map(is_zoo, cs)), "the zoo") if is_zoo(c))
    shown = family_colours(zoo)
    assert len(shown) >= 2
    for family, colour in shown.items():
        assert colour == rgb(figures.FAMILY_COLORS[family]), f"{family} on {dataset}"
    assert_no_exception(page)


def test_compare_bars_are_family_coloured_upright_and_in_one_format(server, page):
    page.goto(f"{server}/compare?c1=timesformer_base;depth=2&c2=mvit_v2_s&c3=swin3d_t")
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    shown = {c["title"]: c for c in charts(page, lambda cs: len(cs) >= 3, "three charts")}
    families = [figures.FAMILY_COLORS[f] for f in ("timesformer", "mvit", "swin3d")]
    for title in ("parameters", "MACs per view"):
        bars = shown[title]
        (trace,) = bars["traces"]
        assert [rgb(c) for c in trace["marker"]] == [rgb(c) for c in families], title
        assert bars["xaxis"]["tickangle"] == 0, f"{title}: labels rotated"
        # one format: the same prefix and the same number of decimals on every bar
        formats = {re.sub(r"\d", "9", re.sub(r"^\d[\d,]*", "9", text)) for text in trace["text"]}
        assert len(formats) == 1, f"{title}: {trace['text']}"
    tokens = shown["tokens per stage"]
    assert [rgb(t["line"]) for t in tokens["traces"]] == [rgb(c) for c in families]
    assert_no_exception(page)


def test_run_time_per_layer_names_its_axis_and_its_colours(server, page):
    page.goto(f"{server}/run?model=timesformer_base&depth=2&img_size=64&clip=rotating_bar")
    page.wait_for_selector("text=time per layer")
    wait_idle(page)
    chart = next(c for c in charts(page, lambda cs: any(c["title"] == "time per layer" for c in cs), "time per layer")
                 if c["title"] == "time per layer")
    assert chart["xaxis"]["title"] and "layer" in chart["xaxis"]["title"]
    assert chart["showlegend"] is True
    names = [t["name"] for t in chart["traces"]]
    assert len(names) >= 2 and set(names) <= set(figures.CATEGORY_COLORS)
    for trace in chart["traces"]:
        assert rgb(trace["marker"]) == rgb(figures.CATEGORY_COLORS[trace["name"]])
    assert_no_exception(page)


SIDE = ("m1=timesformer_base;depth=2;img_size=64&m2=mvit_v2_s;depths=1,1,1,1;num_frames=4;img_size=64"
        "&clip=moving_square&topk=3")


def test_side_by_side_maps_and_bars_in_their_colours(server, page):
    page.goto(f"{server}/side-by-side?{SIDE}")
    page.wait_for_selector("text=done: 2 models")
    wait_idle(page)
    shown = charts(page, lambda cs: sum(1 for c in cs if any(t["type"] == "heatmap" for t in c["traces"])) == 2,
                   "both models' maps")
    bars = [c["traces"][0] for c in shown if len(c["traces"]) == 1 and c["traces"][0]["type"] == "bar"]
    assert [rgb(b["marker"]) for b in bars] == [rgb(figures.FAMILY_COLORS[f]) for f in ("timesformer", "mvit")]
    heat = [(c["title"], t) for c in shown for t in c["traces"] if t["type"] == "heatmap"]
    assert len(heat) == 8
    for title, trace in heat:
        assert_heat_scale(trace["colorscale"], title)
    assert_no_exception(page)
