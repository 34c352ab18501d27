"""Share links: round trips, and tampered parameters that fall back to defaults with a reason."""

import pytest

import videoattn_core as vac
from videoattn_core.links import make_link, parse_link


def _layer(text: str) -> int:
    value = int(text)
    if not 0 <= value < 12:
        raise ValueError("layer must be from 0 to 11")
    return value


def test_round_trip_of_non_default_fields_and_page_state():
    config = vac.get_config("timesformer_base", attention_type="joint_space_time", num_frames=16,
                            qkv_bias=False, qk_scale=None)
    params = make_link("timesformer_base", config, {"layer": 5, "clip": "moving_square"})
    assert params == {"model": "timesformer_base", "attention_type": "joint_space_time", "num_frames": "16",
                      "qkv_bias": "false", "layer": "5", "clip": "moving_square"}
    state = parse_link(params, page_fields={"layer": _layer, "clip": str})
    assert state.config == config
    assert state.overrides == {"attention_type": "joint_space_time", "num_frames": 16, "qkv_bias": False}
    assert state.page == {"layer": 5, "clip": "moving_square"}
    assert state.ignored == []


def test_default_values_do_not_travel():
    assert make_link("timesformer_hr", vac.get_config("timesformer_hr")) == {"model": "timesformer_hr"}


@pytest.mark.parametrize("params, field, words", [
    ({"model": "gpt5"}, "model", "unknown model"),
    ({"num_frames": "lots"}, "num_frames", "must be an integer"),
    ({"num_frames": "100000"}, "num_frames", "from 1 to 512"),
    ({"attention_type": "<script>alert(1)</script>"}, "attention_type", "one of"),
    ({"depth": "1e400"}, "depth", "must be an integer"),
    ({"hack": "1"}, "hack", "not a hyperparameter"),
    ({"layer": "99"}, "layer", "from 0 to 11"),
    ({"layer": "x"}, "layer", "ignored"),
])
def test_tampered_parameters_fall_back_with_a_reason(params, field, words):
    state = parse_link(params, page_fields={"layer": _layer})
    assert len(state.ignored) == 1
    assert state.ignored[0].startswith(f"{field}=") and words in state.ignored[0]
    assert state.config == vac.get_config(state.preset)


def test_impossible_combination_drops_the_field_the_error_names():
    state = parse_link({"model": "timesformer_base", "embed_dim": "100", "depth": "4"})
    assert state.overrides == {"depth": 4}
    assert state.config.embed_dim == 768 and state.config.depth == 4
    assert len(state.ignored) == 1 and "num_heads" in state.ignored[0]


def test_long_tampered_values_are_not_echoed_in_full():
    state = parse_link({"attention_type": "x" * 5000})
    assert len(state.ignored[0]) < 400
