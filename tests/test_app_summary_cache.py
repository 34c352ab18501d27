"""The Model page through the disk cache of summaries (AppTest): what it shows from a cache the warm-up filled, or
from a cache whose files were broken, is what the library computes — numbers, memory estimate and growth curves."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from streamlit.testing.v1 import AppTest

import videoattn_core as vac
from videoattn_core.cost import growth, memory
from videoattn_core import figures
from videoattn_core.inspection import summary_cache
from videoattn_core.units import human_bytes

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_model(params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update(params)
    return at.run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def values(value) -> list[float]:
    """A figure's array as plotly serialises it (a list, or a typed array: dtype and base64 bdata)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).astype(float).tolist()
    return [float(v) for v in value]


def frames_curve(at: AppTest) -> dict[str, list[float]]:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["layout"].get("xaxis", {}).get("title", {}).get("text") == "frames":
            return {t["name"]: values(t["y"]) for t in spec["data"] if t.get("name")}
    raise AssertionError("no growth chart against frames")


def assert_shows_the_library(at: AppTest, config: vac.ModelConfig) -> None:
    assert not at.exception, [e.value for e in at.exception]
    truth = vac.summarize(config)
    assert metric(at, "parameters") == f"{truth.params:,}"
    assert metric(at, "MACs per view") == figures.human(truth.macs)
    plan = memory.memory_plan(truth, "cpu", 4)
    assert metric(at, "memory (fp32, batch 1, CPU)") == human_bytes(plan["total_bytes"])
    assert len(at.dataframe[0].value) == len(truth.layers)


def test_model_page_from_a_warmed_cache_and_from_broken_files(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOATTN_CACHE_DIR", str(tmp_path))
    # configs no other test of this process shows (the app's in-memory caches are process-wide)
    params = {"model": "timesformer_base", "depth": "3", "img_size": "96"}
    config = vac.get_config("timesformer_base", depth=3, img_size=96)
    cache = summary_cache.DiskCache(tmp_path)
    summary_cache.cached_summary(config, cache=cache).memory_estimate(4, 1)
    summary_cache.cached_growth_curves(config, "frames", cache=cache)
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.json")) == ["growth", "growth", "summary"]
    assert_shows_the_library(open_model(params), config)

    other = {"model": "timesformer_base", "depth": "3", "img_size": "128"}
    other_config = vac.get_config("timesformer_base", depth=3, img_size=128)
    summary_cache.cached_summary(other_config, cache=cache)
    summary_cache.cached_growth_curves(other_config, "frames", cache=cache)
    for path in tmp_path.glob("*.json"):
        entry = json.loads(path.read_text())
        if entry["config"]["img_size"] == 128:  # break every entry of this config without resealing it
            if entry["kind"] == "summary":
                entry["payload"]["macs"] *= 3
            else:
                entry["payload"]["series"] = {name: [xs, [y * 3 for y in ys]]
                                              for name, (xs, ys) in entry["payload"]["series"].items()}
            path.write_text(json.dumps(entry))
    at = open_model(other)
    assert_shows_the_library(at, other_config)
    at.button_group(key="model.section").set_value("growth").run()
    assert not at.exception, [e.value for e in at.exception]
    series, _, _ = growth.growth_curves(other_config, "frames")
    assert frames_curve(at) == {name: ys for name, (_, ys) in series.items()}
