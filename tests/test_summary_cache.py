"""The disk cache of summaries and growth curves (``videoattn_core.inspection.summary_cache``): a hit gives back the
summary the library computes; a config change, a code change, a stale or a tampered file is a miss (recomputed,
never trusted); and the growth curves' fast count equals the summaries it stands for."""

from __future__ import annotations

import contextlib
import json
import pickle

import pytest
import torch
import torch.nn.functional as F

import videoattn_core as vac
from videoattn_core.cost import growth
from videoattn_core.inspection import summary as summary_module
from videoattn_core.inspection import summary_cache as sc

SMALL = {"depth": 2, "img_size": 64}


@pytest.fixture
def cache(tmp_path):
    return sc.DiskCache(tmp_path)


@pytest.fixture
def counted(monkeypatch):
    """Counts the summaries actually computed (a cache hit computes none)."""
    calls = []
    real = summary_module.summarize

    def summarize(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(summary_module, "summarize", summarize)
    return calls


def small_config(**overrides):
    return vac.get_config("timesformer_base", **SMALL, **overrides)


def test_a_hit_returns_the_library_summary_without_computing(cache, counted):
    config = small_config()
    first = sc.cached_summary(config, cache=cache)
    first.memory_estimate(4, 1)
    sc.save_summary(first, cache=cache)
    assert len(counted) == 1
    again = sc.cached_summary(config, cache=cache)
    assert len(counted) == 1  # read, not recomputed
    truth = vac.summarize(config)
    assert again.to_dict() == truth.to_dict()
    assert again.layers == truth.layers
    assert again.peak_bytes == first.peak_bytes  # the counted memory peak came back too


def test_a_config_change_or_other_input_misses(cache, counted):
    sc.cached_summary(small_config(), cache=cache)
    changed = sc.cached_summary(small_config(attention_type="joint_space_time"), cache=cache)
    other_frames = sc.cached_summary(small_config(), frames=4, cache=cache)
    assert len(counted) == 3
    assert changed.macs == vac.summarize(small_config(attention_type="joint_space_time")).macs
    assert other_frames.macs == vac.summarize(small_config(), frames=4).macs


def test_a_code_change_misses(cache, counted, monkeypatch):
    config = small_config()
    sc.cached_summary(config, cache=cache)
    monkeypatch.setattr(sc, "code_fingerprint", lambda: "another version of the code")
    sc.cached_summary(config, cache=cache)
    assert len(counted) == 2


def test_a_stale_entry_at_the_same_path_is_ignored(cache, counted):
    config = small_config()
    sc.cached_summary(config, cache=cache)
    path = cache.path("summary", config, {"frames": None, "size": None})
    entry = json.loads(path.read_text())
    entry["code"] = "written by older code"
    path.write_text(json.dumps(entry))
    assert sc.cached_summary(config, cache=cache).macs == vac.summarize(config).macs
    assert len(counted) == 2
    assert json.loads(path.read_text())["code"] == sc.code_fingerprint()  # replaced by a good entry


def _tamper(path, change) -> None:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


def _reseal(entry) -> None:
    """What a careful forger does: recompute the stored digest of the changed payload."""
    import hashlib

    entry["digest"] = hashlib.sha256(sc._canonical(entry["payload"]).encode()).hexdigest()


def _shown_macs_tripled(entry) -> None:
    entry["payload"]["macs"] *= 3


def _record_macs_tripled_resealed(entry) -> None:
    entry["payload"]["macs"] *= 3
    entry["payload"]["layers"][1]["macs"] += 2 * (entry["payload"]["macs"] // 3)
    _reseal(entry)  # totals still add up; only the types and the digest stand in the way
    entry["payload"]["layers"][1]["macs"] = str(entry["payload"]["layers"][1]["macs"])
    _reseal(entry)


def _totals_do_not_add_up_resealed(entry) -> None:
    entry["payload"]["params"] += 1
    _reseal(entry)


def _views_changed_resealed(entry) -> None:
    entry["payload"]["views"] = 30
    _reseal(entry)


def _input_shape_changed_resealed(entry) -> None:
    entry["payload"]["input_shape"][2] = 16
    _reseal(entry)


def _object_in_place_of_a_shape(entry) -> None:
    entry["payload"]["input_shape"] = {"__class__": "os.system"}
    _reseal(entry)


@pytest.mark.parametrize("change", [_shown_macs_tripled, _record_macs_tripled_resealed,
                                    _totals_do_not_add_up_resealed, _views_changed_resealed,
                                    _input_shape_changed_resealed, _object_in_place_of_a_shape])
def test_a_tampered_entry_is_ignored(cache, counted, change):
    config = small_config()
    sc.cached_summary(config, cache=cache)
    path = cache.path("summary", config, {"frames": None, "size": None})
    _tamper(path, change)
    again = sc.cached_summary(config, cache=cache)
    assert len(counted) == 2  # recomputed
    truth = vac.summarize(config)
    assert (again.params, again.macs, again.views, again.input_shape) == (truth.params, truth.macs, truth.views,
                                                                          truth.input_shape)


@pytest.mark.parametrize("content", [b"not json", b"", pickle.dumps({"payload": 1}), b'{"format": 1}',
                                     b"[" * 100_000])
def test_a_broken_file_is_ignored(cache, counted, content):
    config = small_config()
    path = cache.path("summary", config, {"frames": None, "size": None})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    assert sc.cached_summary(config, cache=cache).macs == vac.summarize(config).macs
    assert len(counted) == 1


def test_growth_curves_through_the_cache_match_the_summaries(cache, counted):
    config = small_config()
    series, dashed, current = sc.cached_growth_curves(config, "frames", cache=cache)
    again = sc.cached_growth_curves(config, "frames", cache=cache)
    assert again == (series, dashed, current)
    assert set(dashed) == {"joint_space_time: total", "joint_space_time: attention", "space_only: total",
                           "space_only: attention"}
    for name, (xs, ys) in series.items():
        scheme = name.split(":")[0]
        cfg = config if scheme.startswith("this config") else config.replace(attention_type=scheme)
        for x, y in zip(xs, ys):
            s = vac.summarize(cfg, frames=x)
            assert y == (s.macs if name.endswith("total") else growth.attention_macs(s)), (name, x)
    path = cache.path("growth", config, {"axis": "frames"})
    _tamper(path, lambda e: (e["payload"]["series"][next(iter(series))][1].__setitem__(0, 1.0), _reseal(e)))
    assert sc.cached_growth_curves(config, "frames", cache=cache) != (series, dashed, current)  # a resealed forgery
    # of plausible numbers is read (the cache holds the user's own files); a broken one is not:
    _tamper(path, lambda e: (e["payload"]["series"][next(iter(series))][1].__setitem__(0, "many"), _reseal(e)))
    assert sc.cached_growth_curves(config, "frames", cache=cache) == (series, dashed, current)


def test_cost_points_equal_the_summaries_and_skip_impossible_points():
    config = vac.get_config("swin3d_t", img_size=64, depths=(2, 2, 2, 2))
    base = vac.summarize(config)
    categories = {r.name: r.category for r in base.layers}
    points = [(None, 32), (None, 96), (4, None), (0, None), (None, 3)]
    costs = summary_module.cost_points(config, points, categories)
    for (frames, size), cost in zip(points, costs):
        try:
            s = vac.summarize(config, frames=frames, size=size)
        except vac.VideoAttnError:
            assert cost is None, (frames, size)
            continue
        assert cost == (s.macs, growth.attention_macs(s)), (frames, size)
    assert costs[3] is None  # 0 frames is out of range


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


META_CASES = {
    "arange": lambda: torch.arange(5, device="meta"),
    "arange start end step": lambda: torch.arange(2, 9, 3, device="meta"),
    "arange backwards": lambda: torch.arange(9, 2, -2, device="meta"),
    "arange empty": lambda: torch.arange(3, 3, device="meta"),
    "arange impossible": lambda: torch.arange(5, 2, device="meta"),
    "arange float": lambda: torch.arange(0.5, 3, device="meta"),
    "cat promotes": lambda: torch.cat([_meta(2, 3), _meta(2, 5, dtype=torch.float64)], dim=-1),
    "cat mismatch": lambda: torch.cat([_meta(2, 3), _meta(3, 5)], dim=1),
    "cat legacy empty": lambda: torch.cat([_meta(0), _meta(2, 3)]),
    "broadcast": lambda: torch.arange(4, device="meta")[:, None] * 1.5 - torch.arange(3, device="meta"),
    "integer division": lambda: torch.arange(4, device="meta") / 2,
    "bool plus int": lambda: torch.ones(2, device="meta", dtype=torch.bool) + 1,
    "bool minus bool": lambda: _meta(2, dtype=torch.bool) - _meta(2, dtype=torch.bool),
    "scalar minus int32": lambda: 3 - _meta(2, 1, dtype=torch.int32),
    "bf16 times fp32": lambda: _meta(2, 1, dtype=torch.bfloat16) * _meta(3),
    "no broadcast": lambda: _meta(2, 3) + _meta(4),
    "alpha": lambda: torch.add(_meta(2, 3), _meta(3), alpha=2),
    "interpolate linear": lambda: F.interpolate(_meta(1, 96, 27), size=55, mode="linear"),
    "interpolate trilinear": lambda: F.interpolate(_meta(2, 3, 4, 5, 6), size=(3, 8, 9), mode="trilinear",
                                                   align_corners=True),
    "interpolate nearest bf16": lambda: F.interpolate(_meta(1, 2, 7, dtype=torch.bfloat16), size=[4]),
    "interpolate wrong rank": lambda: F.interpolate(_meta(1, 96, 27), size=55, mode="bilinear"),
    "interpolate size of wrong length": lambda: F.interpolate(_meta(1, 2, 5, 5), size=(3, 3, 3)),
    "interpolate nearest align": lambda: F.interpolate(_meta(1, 2, 5), size=3, align_corners=True),
    "interpolate integer": lambda: F.interpolate(_meta(1, 2, 5, dtype=torch.int64), size=3),
    "interpolate zero size": lambda: F.interpolate(_meta(1, 2, 5), size=0),
    "interpolate scale": lambda: F.interpolate(_meta(1, 2, 5), scale_factor=2.0, mode="linear"),
    "interpolate size and recompute": lambda: F.interpolate(_meta(1, 2, 5), size=3, recompute_scale_factor=True),
}


@pytest.mark.parametrize("name", list(META_CASES))
def test_meta_shortcuts_give_pytorchs_shapes_dtypes_and_errors(name):
    def outcome():
        try:
            out = META_CASES[name]()
        except (RuntimeError, ValueError) as exc:
            return type(exc), str(exc)
        return tuple(out.shape), out.dtype, out.device.type

    expected = outcome()
    with summary_module.MetaElementwise():
        assert outcome() == expected


@pytest.mark.parametrize("preset,frames,size", [("mvit_v2_s", 8, 160), ("mvit_v1_b", 4, 288),
                                                ("swin3d_t", 4, 96), ("vjepa2_vitl", 8, 160)])
def test_summaries_at_other_input_sizes_equal_those_without_the_meta_shortcuts(preset, frames, size, monkeypatch):
    """At an input size the model was not built for, MViT resizes its relative position tables (``F.interpolate``,
    answered from shapes): every layer's shapes and MACs equal what PyTorch's own meta kernels give."""
    fast = vac.summarize(preset, frames=frames, size=size)
    monkeypatch.setattr(summary_module, "MetaElementwise", contextlib.nullcontext)
    monkeypatch.setattr(summary_module, "shape_only_forwards", lambda model: None)
    slow = vac.summarize(preset, frames=frames, size=size)
    assert [(r.name, r.input_shapes, r.output_shape, r.output_layout, r.macs, r.macs_total) for r in fast.layers] \
        == [(r.name, r.input_shapes, r.output_shape, r.output_layout, r.macs, r.macs_total) for r in slow.layers]
    assert fast.macs == slow.macs
