"""Side by side at a glance: every row shows its model's input frames at the same moments of the clip (the core's
:func:`videoattn_core.run.side_by_side.frames_at_moments` against hand-made frame indices, the page against the frames each model
read, as ``vac.predict`` reports them), its results stay while their inputs do, and a failing model leaves a
failed status."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import pages._widgets
import videoattn_core as vac
from test_app import assert_clean, charts, open_app
from videoattn_core.run import side_by_side

ASSETS = Path(__file__).resolve().parents[1] / "assets"
TSF = "timesformer_base;depth=2;img_size=64"  # 8 frames every 32: on Big Buck Bunny (132 frames) it repeats 131
MVIT = "mvit_v2_s;depths=1,1,1,1;num_frames=4;img_size=64"  # 4 frames, the first 11 of the clip
MAE = "videomae_base;depth=1;img_size=64"  # 16 frames from the middle of the clip


# ------------------------------------------------------------------------------------------------ core

def test_a_sparse_model_shows_distinct_frames_and_says_which_are_not_the_nearest():
    read = [0, 30, 60, 91, 121, 131, 131, 131]  # TimeSformer on Big Buck Bunny
    shown = side_by_side.frames_at_moments(read, [32, 38, 44, 50])  # the span every model covers
    assert shown.moments == (32, 38, 44, 50)
    assert shown.positions == (0, 1, 2, 3) and shown.sources == (0, 30, 60, 91)  # not 30, 30, 30, 60
    assert shown.notes == ("frame 32: input frame 0 shown (the nearest, 30, is shown for frame 38)",
                           "frame 44: input frame 60 shown (the nearest, 30, is shown for frame 38)",
                           "frame 50: input frame 91 shown (the nearest, 60, is shown for frame 44)")
    assert shown.titles == ["at 32: frame 0", "at 38: frame 30", "at 44: frame 60", "at 50: frame 91"]
    assert shown.caption(8) == "At source frames 32, 38, 44, 50: source frames 0, 30, 60, 91 (input frames 0, 1, 2, 3 of 8)."


def test_moments_outside_a_models_window_are_named():
    shown = side_by_side.frames_at_moments([0, 30, 60, 91], [0, 106, 212])
    assert shown.sources == (0, 60, 91)
    assert shown.notes == (
        "frame 106 is outside this model's window (frames 0–91); input frame 60 shown (the nearest, 91, is shown "
        "for frame 212)",
        "frame 212 is outside this model's window (frames 0–91); nearest input frame 91 shown")
    late = side_by_side.frames_at_moments([92, 104, 152], [0, 106, 212])
    assert late.sources == (92, 104, 152)
    assert late.notes == ("frame 0 is outside this model's window (frames 92–152); nearest input frame 92 shown",
                          "frame 212 is outside this model's window (frames 92–152); nearest input frame 152 shown")
    inside = side_by_side.frames_at_moments(list(range(0, 240, 30)), [0, 90, 210])
    assert inside.sources == (0, 90, 210) and inside.notes == ()


def test_a_frame_is_shown_twice_only_when_the_model_read_it_twice_and_then_it_says_so():
    read = [0, 30, 60, 91, 121, 131, 131, 131]
    moments = [0, 19, 37, 56, 75, 94, 112, 131]
    shown = side_by_side.frames_at_moments(read, moments)
    assert shown.positions == tuple(range(8)) and shown.sources == tuple(read)
    assert "frame 131 is shown 3 times: the model read it 3 times (positions 5, 6, 7 of its input)" in shown.notes
    # with fewer moments it prefers frames it read once, even when farther
    few = side_by_side.frames_at_moments(read, [131, 200, 250])
    assert few.sources == (91, 121, 131) and not any("times" in n for n in few.notes)


def test_a_model_with_fewer_frames_than_moments_shows_each_once():
    shown = side_by_side.frames_at_moments([0, 10, 20, 30], [0, 5, 10, 15, 20, 25, 30])
    assert shown.moments == (0, 10, 20, 30) and shown.positions == (0, 1, 2, 3)
    assert [n.split(":")[0] for n in shown.notes] == ["frame 5", "frame 15", "frame 25"]
    assert all("this model reads 4 frames, fewer than the 7 moments" in n for n in shown.notes)


# ------------------------------------------------------------------------------------------------ page

def row_captions(at) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("At source frames")]


def row_notes(at) -> list[list[str]]:
    """Per row, its notes (a caption listing them follows the row's frame caption)."""
    values = [c.value for c in at.caption]
    return [values[i + 1].removeprefix("- ").split("\n- ") if values[i + 1].startswith("- ") else []
            for i, v in enumerate(values) if v.startswith("At source frames")]


def map_titles(at) -> list[list[str]]:
    return [[a["text"] for a in c["layout"].get("annotations", []) if a["text"].startswith("at ")]
            for c in charts(at) if any(t["type"] == "heatmap" for t in c["data"])]


def test_every_row_shows_the_same_moments_from_the_frames_its_model_read():
    at = open_app("side_by_side", n="3", m1=TSF, m2=MVIT, m3=MAE, clip="big_buck_bunny", topk="2", frames="8")
    assert_clean(at)
    read = []
    for spec in (TSF, MVIT, MAE):
        preset, *pairs = spec.split(";")
        overrides = vac.links.spec_config(preset, pairs).diff(vac.get_preset(preset).config)
        prediction = vac.predict(preset, ASSETS / "big_buck_bunny.mp4", overrides=overrides, device="cpu", top_k=1)
        read.append(prediction.clip["sampled_indices"])
    assert read[0] == [0, 30, 60, 91, 121, 131, 131, 131]
    moments = side_by_side.common_moments(read, 8)
    assert moments == [0, 19, 37, 56, 75, 94, 112, 131]  # the windows are disjoint: the whole span
    listed = ", ".join(map(str, moments))
    assert any(f"nearest to source frames {listed} of the clip" in c.value for c in at.caption)
    captions, notes, titles = row_captions(at), row_notes(at), map_titles(at)
    assert len(captions) == len(titles) == 3
    for caption, note, title, ix in zip(captions, notes, titles, read):
        shown = [int(t.split("frame ")[1]) for t in title]
        at_moments = [int(t.split(":")[0].removeprefix("at ")) for t in title]
        assert caption.startswith(f"At source frames {', '.join(map(str, at_moments))}: source frames "
                                  f"{', '.join(map(str, shown))} ")
        assert set(at_moments) <= set(moments) and all(s in ix for s in shown)
        for m in set(moments) - set(at_moments):  # a moment left out is named, with the reason
            assert any(n.startswith(f"frame {m}") and "fewer than the 8 moments" in n for n in note)
        for s in {s for s in shown if shown.count(s) > 1}:  # a frame twice only when read twice, and said
            assert ix.count(s) >= shown.count(s)
            assert f"frame {s} is shown {shown.count(s)} times: the model read it {ix.count(s)} times" in " ".join(note)
    tsf, mvit, mae = titles
    assert len(tsf) == 8 and len(mvit) == 4 and len(mae) == 8
    assert "frame 131 is outside" not in " ".join(notes[0])
    assert "frame 131 is shown 3 times: the model read it 3 times (positions 5, 6, 7 of its input)" in notes[0]
    assert "frame 56 is outside this model's window (frames 0–10); nearest input frame 10 shown" in notes[1]
    assert ("frame 131 is outside this model's window (frames 0–10); no input frame left for it (this model reads 4 "
            "frames, fewer than the 8 moments)") in notes[1]
    assert "frame 0 is outside this model's window (frames 32–92); nearest input frame 32 shown" in notes[2]


def test_results_stay_when_leaving_and_coming_back_until_their_inputs_change(monkeypatch):
    monkeypatch.setattr(pages._widgets, "AUTO_RUN_MACS", 0)  # every forward waits for the Run button
    runs = []
    run_on_clip = side_by_side.run_on_clip
    monkeypatch.setattr(side_by_side, "run_on_clip", lambda *a, **k: runs.append(a[0].preset) or run_on_clip(*a, **k))
    st.cache_resource.clear()
    at = open_app("side_by_side", m1=TSF, m2=MVIT, clip="rotating_bar", topk="3", frames="3")
    assert_clean(at)
    assert any("press Run" in i.value for i in at.info) and not charts(at)
    at.button(key="side.run").click().run()
    assert_clean(at)
    before = charts(at)
    assert len(before) == 4 and len(runs) == 2
    at.query_params.clear()  # the sidebar navigation drops the query string
    at.switch_page("pages/model.py").run()
    assert_clean(at)
    st.cache_resource.clear()  # other sessions' models pushed these out of the shared cache
    at.query_params.clear()
    at.switch_page("pages/side_by_side.py").run()
    assert_clean(at)
    assert not any("press Run" in i.value for i in at.info)
    assert charts(at) == before and len(runs) == 2  # shown again, nothing run again
    # another number of moments needs no new forward either; another map does, and waits for Run again
    at.slider(key="side.frames").set_value(2).run()
    assert_clean(at)
    assert len(runs) == 2 and len(row_captions(at)) == 2
    at.radio(key="side.method").set_value("rollout").run()
    assert_clean(at)
    assert any("press Run" in i.value for i in at.info) and not charts(at) and len(runs) == 2
    st.cache_resource.clear()


def test_an_uploaded_clip_and_its_results_stay_when_coming_back(monkeypatch):
    runs = []
    run_on_clip = side_by_side.run_on_clip
    monkeypatch.setattr(side_by_side, "run_on_clip", lambda *a, **k: runs.append(a[0].preset) or run_on_clip(*a, **k))
    st.cache_resource.clear()
    at = open_app("side_by_side", m1=TSF, m2=MVIT, topk="3", frames="3")
    at.radio(key="side.source").set_value("upload").run()
    at.file_uploader(key="side.upload").upload("clip.mp4", (ASSETS / "rotating_bar.mp4").read_bytes(), "video/mp4")
    at.run()
    assert_clean(at)
    before, captions = charts(at), row_captions(at)
    assert len(before) == 4 and runs[-2:] == ["timesformer_base", "mvit_v2_s"] and at.query_params["clip"] == "upload"
    ran = len(runs)
    at.query_params.clear()
    at.switch_page("pages/model.py").run()
    st.cache_resource.clear()
    at.query_params.clear()
    at.switch_page("pages/side_by_side.py").run()
    assert_clean(at)
    assert at.radio(key="side.source").value == "upload"
    assert any(c.value.startswith("uploaded clip:") for c in at.caption)
    assert charts(at) == before and row_captions(at) == captions and len(runs) == ran
    st.cache_resource.clear()


def test_a_failing_model_leaves_the_status_failed_and_the_other_rows_shown(monkeypatch):
    run_on_clip = side_by_side.run_on_clip

    def failing(plan, clip, **kwargs):
        if plan.preset == "mvit_v2_s":
            raise vac.VideoError("big_buck_bunny.mp4 is corrupt or truncated: decoding failed after 3 frames")
        return run_on_clip(plan, clip, **kwargs)

    monkeypatch.setattr(side_by_side, "run_on_clip", failing)
    st.cache_resource.clear()
    at = open_app("side_by_side", m1=TSF, m2=MVIT, topk="2", frames="2")
    assert_clean(at)
    assert len(at.status) == 1
    status = at.status[0]
    assert status.state == "error"
    assert status.label == "failed while running model 2. mvit_v2_s;num_frames=4;img_size=64;depths=1,1,1,1 · random"
    assert any(e.value.startswith("model 2. mvit_v2_s") and "decoding failed after 3 frames" in e.value
               for e in at.error)
    assert not any("running…" in c.value or "waiting…" in c.value for c in at.caption)
    assert len(row_captions(at)) == 1  # the first model's row is shown
    st.cache_resource.clear()
