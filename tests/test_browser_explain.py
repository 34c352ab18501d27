"""The Attention page's Explain view in a real browser (``streamlit run`` + headless Chromium): the animation's
frames hold ``vac.explain``'s map for the page's model (seed-0 weights), clip and class; a class picked in the
class box changes the map to that class's; the "overlay (MP4)" download decodes to the clip's sampled frames,
enlarged to a readable size, with a colour bar that states the map's range."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import videoattn_core as vac

pytest.register_assert_rewrite("browser_support")
from browser_support import as_array, assert_no_exception, assert_same_map, find_chart, wait_idle
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from videoattn_core.run import runtime

pytest_plugins = ["browser_support"]
pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "assets" / "big_buck_bunny.mp4"  # the sample clip a link without clip= shows
OVERRIDES = {"depth": 2, "img_size": 64}
LINK = "/attention?model=timesformer_base&depth=2&img_size=64&explain=relevance"
#: page and library run the same float32 code on the CPU; a few float32 ulps of slack
RTOL = 1e-6

#: every animated chart's frames as the browser holds them: name and the heatmap's z of each frame
_READ_ANIMATIONS = """() => {
  const plain = v => ArrayBuffer.isView(v) ? Array.from(v)
                   : Array.isArray(v) ? v.map(plain)
                   : (v && typeof v === 'object' && 'bdata' in v) ? {dtype: v.dtype, bdata: v.bdata, shape: v.shape}
                   : v;
  return [...document.querySelectorAll('.js-plotly-plot')]
    .filter(gd => gd._transitionData && gd._transitionData._frames && gd._transitionData._frames.length)
    .map(gd => gd._transitionData._frames.map(f => ({
      name: f.name,
      z: plain((f.data || []).find(t => t.type === 'heatmap').z),
    })));
}"""


def library(target: int | None = None):
    """The page's pipeline in the library: the sample clip's first view, seed-0 weights, CPU; the top-5 classes
    and the relevance map of ``target`` (default: the top class)."""
    plan = runtime.plan_run("timesformer_base", CLIP, overrides=OVERRIDES, device="cpu", estimate=False)
    loaded = runtime.load_inputs(plan, CLIP)
    x = loaded.tensor[:1]
    model = runtime.build_seeded(plan.config, 0).eval()
    top = [p["index"] for p in runtime.top_predictions(runtime.classify(model, x), [], 5)]
    return top, loaded.clip.frame_indices, model, x


def animation_frames(page) -> list[np.ndarray]:
    """The one animated chart's heatmap in each of its frames, in frame order."""
    animations = page.evaluate(_READ_ANIMATIONS)
    assert len(animations) == 1, f"expected one animated chart, found {len(animations)}"
    frames = animations[0]
    assert [f["name"] for f in frames] == [str(i) for i in range(len(frames))]
    return [as_array(f["z"]) for f in frames]


def pick_option(page, label: str, index: int) -> None:
    """Open a selectbox by clicking its text box and click its ``index``-th option (a rerun that is still
    redrawing the page can close the list: then it is opened again)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    for _ in range(5):
        box.click()
        try:
            page.get_by_role("option").nth(index).wait_for(timeout=5_000)
        except PlaywrightTimeout:
            continue
        page.get_by_role("option").nth(index).click()
        return
    pytest.fail(f"the options of the selectbox {label!r} did not open")


def assert_animation_is(page, expected: vac.Explanation, what: str) -> None:
    shown = animation_frames(page)
    assert len(shown) == expected.frames.shape[0], what
    for i, z in enumerate(shown):
        assert_same_map(z, expected.frames[i], f"{what}, frame {i}", rtol=RTOL)


def test_explain_view_map_class_box_and_mp4(server, page, tmp_path):
    top, frame_indices, model, x = library()
    expected = vac.explain(model, x, target=top[0], method="relevance")
    page.goto(server + LINK)
    wait_idle(page)
    assert_no_exception(page)
    find_chart(page, "relevance animation", lambda c: c.title.startswith("relevance for"))
    page.wait_for_url(re.compile(rf".*target={top[0]}\b.*"))
    assert_animation_is(page, expected, f"relevance of the top class {top[0]}")


    # another class picked in the class box: the URL and the map follow it
    pick_option(page, "class (top 5)", 1)
    page.wait_for_url(re.compile(rf".*target={top[1]}\b.*"))
    wait_idle(page)
    assert_no_exception(page)
    second = vac.explain(model, x, target=top[1], method="relevance")
    assert not np.allclose(second.frames, expected.frames)  # the two classes' maps differ, so the check can fail
    assert_animation_is(page, second, f"relevance of the second class {top[1]}")


def test_the_overlay_download_is_enlarged_with_a_colour_bar_stating_its_range(server, page, tmp_path):
    """The exported overlay was the model's 64 px (224 px for real presets) frames with no colour bar."""
    top, frame_indices, model, x = library()
    expected = vac.explain(model, x, target=top[0], method="relevance")
    page.goto(server + LINK)
    wait_idle(page)
    find_chart(page, "relevance animation", lambda c: c.title.startswith("relevance for"))
    page.wait_for_url(re.compile(rf".*target={top[0]}\b.*"))
    with page.expect_download() as info:
        page.get_by_role("button", name="overlay (MP4)").click()
    path = tmp_path / "overlay.mp4"
    info.value.save_as(path)
    import av

    with av.open(str(path)) as container:
        comment = container.metadata.get("comment", "")
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # one decoded frame per sampled frame of the clip, the 64 px frames enlarged, the colour bar on their right
    assert len(decoded) == len(frame_indices) == x.shape[2] == 8
    height, width, _ = decoded[0].shape
    assert height >= 448 and width > height, decoded[0].shape
    # the range it states is the map's: its lowest and highest value
    assert comment.startswith("relevance: "), comment
    stated = [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", comment.split(":", 1)[1])]
    assert stated == pytest.approx([float(expected.frames.min()), float(expected.frames.max())], rel=1e-3), comment
    # the bar: right of the (square) frames, a column whose coloured run goes from the bright end down to the dark
    panel = decoded[0][:, height:].astype(np.float64)
    luminance = panel.mean(axis=2)
    bars = []
    for c in range(panel.shape[1]):
        coloured = np.flatnonzero(np.abs(panel[:, c] - 255).max(axis=1) > 60)  # not the white background
        if len(coloured) > height // 2:
            run = luminance[coloured[3]:coloured[-3], c]
            bars.append((run[0], run[-1], np.diff(np.convolve(run, np.ones(9) / 9, "valid")).max()))
    assert bars, "no colour bar right of the frames"
    assert any(top_l > 180 and bottom_l < 40 and rise < 2 for top_l, bottom_l, rise in bars), bars
    assert_no_exception(page)
