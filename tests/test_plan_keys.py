"""One plan per request, and the plan as the key of the app's caches (issue 28): a run plan is equal to another,
and hashes alike, exactly when the run computes the same thing; the model's own key leaves the clip out; a page
makes its plan once for its inputs, and widget changes that are not inputs of the run (top-k) neither plan, decode,
build nor forward again."""

from __future__ import annotations

import pytest
import streamlit as st

from test_app import assert_clean, open_app
from test_runtime import TINY
import videoattn_core as vac
from videoattn_core.run import runtime

SMALL = {"model": "timesformer_base", "depth": "1", "img_size": "32", "patch_size": "8"}


def plan(clip=None, **kwargs):
    return runtime.plan_run("timesformer_base", clip, overrides=TINY, device="cpu", estimate=False, **kwargs)


def test_plans_are_equal_exactly_when_the_run_is_the_same(tmp_path):
    from clips import write_video

    a = write_video(tmp_path / "a.mp4", 40)
    b = write_video(tmp_path / "b.mp4", 80)
    first, again = plan(a), plan(a)
    assert first == again and hash(first) == hash(again) and first is not again
    assert len({first, again}) == 1
    other_clip = plan(b)
    assert other_clip != first and other_clip.model_key == first.model_key  # same model, other frames
    assert plan(a, seed=1).model_key != first.model_key  # other weights
    assert plan(a, views="protocol") != first
    # uploaded bytes are told apart by their content, not by their name ("uploaded bytes" for both)
    with_bytes = plan(a.read_bytes())
    assert with_bytes.clip_id.startswith("sha256:") and with_bytes != plan(b.read_bytes())
    assert with_bytes == plan(a.read_bytes())


def test_uploaded_checkpoints_are_told_apart_by_their_bytes(tmp_path):
    import torch

    model = runtime.build_seeded(plan().config, 0)
    first = tmp_path / "first.pt"
    torch.save(model.state_dict(), first)
    state = {k: v + 1 for k, v in model.state_dict().items()}
    second = tmp_path / "second.pt"
    torch.save(state, second)
    one = plan(checkpoint=first.read_bytes())
    assert one.weights.name == plan(checkpoint=second.read_bytes()).weights.name
    assert one.model_key != plan(checkpoint=second.read_bytes()).model_key
    assert one.model_key == plan(checkpoint=first.read_bytes()).model_key


def _checkpoint_bytes(tmp_path, shift: float = 0.0) -> bytes:
    import torch

    model = runtime.build_seeded(plan().config, 0)
    path = tmp_path / f"weights{shift}.pt"
    torch.save({k: v + shift for k, v in model.state_dict().items()}, path)
    return path.read_bytes()


def test_a_detached_plan_lets_the_uploaded_bytes_go_and_loads_them_again_when_given(tmp_path):
    import torch

    data = _checkpoint_bytes(tmp_path, 0.5)
    held = plan(checkpoint=data)
    detached = held.detached()
    assert detached.weights.data is None and held.weights.data is data
    assert detached == held and detached.model_key == held.model_key  # the same keys: caches still match
    expected = runtime.load_model(held).model.state_dict()
    got = runtime.load_model(detached, checkpoint=data).model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in expected.items())
    with pytest.raises(vac.ConfigError, match="no longer held"):
        runtime.load_model(detached)
    with pytest.raises(vac.ConfigError, match="not the uploaded checkpoint the run was planned with"):
        runtime.load_model(detached, checkpoint=_checkpoint_bytes(tmp_path, 1.0))
    assert plan().detached() == plan()  # nothing uploaded: nothing to let go


def test_the_apps_plan_cache_does_not_keep_uploaded_checkpoints(tmp_path):
    """A plan stays cached after its session moved on to another upload; the bytes stay with the session only."""
    import pages._cache as page_cache
    from pages._widgets import RunInputs
    from videoattn_core.run.resource_cache import nbytes_of

    st.cache_resource.clear()
    data = _checkpoint_bytes(tmp_path, 0.5)
    config = vac.get_config("timesformer_base", **TINY)
    inputs = RunInputs(clip="rotating_bar", weights="upload:test", device="cpu", dtype="float32")
    cached = page_cache.run_plan("timesformer_base", config, inputs, "single", data)
    assert cached.weights.data is None and nbytes_of(cached) < len(data) // 10
    assert cached.weights.identity == plan(checkpoint=data).weights.identity
    loaded = page_cache.load_model(cached, data)
    assert "the uploaded checkpoint" in loaded.report and not loaded.random_init
    st.cache_resource.clear()


@pytest.fixture
def counted(monkeypatch):
    st.cache_data.clear()
    st.cache_resource.clear()
    calls = {"plan_run": 0, "load_inputs": 0, "load_model": 0, "inspect_run": 0}
    for name in calls:
        original = getattr(runtime, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(runtime, name, counting)
    yield calls
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_run_page_plans_once_and_keys_its_caches_by_the_plan(counted):
    at = open_app("run", **SMALL, clip="rotating_bar")
    assert_clean(at)
    assert counted == {"plan_run": 1, "load_inputs": 1, "load_model": 1, "inspect_run": 1}
    for k in (3, 9, 14):
        at.slider(key="run.topk").set_value(k).run()
        assert_clean(at)
    assert counted == {"plan_run": 1, "load_inputs": 1, "load_model": 1, "inspect_run": 1}
    # another clip is another plan (decoded and forwarded again) but the same model
    at.selectbox(key="run.clip").set_value("moving_square").run()
    assert_clean(at)
    assert counted == {"plan_run": 2, "load_inputs": 2, "load_model": 1, "inspect_run": 2}
    shown = at.json[0].proto.body
    assert "moving_square" in shown  # the plan shown is the plan run


def test_the_attention_page_reuses_the_run_page_plan_and_model(counted):
    at = open_app("run", **SMALL, clip="rotating_bar")
    assert_clean(at)
    at.switch_page("pages/attention.py").run()
    assert_clean(at)
    assert counted["plan_run"] == 1 and counted["load_inputs"] == 1 and counted["load_model"] == 1
