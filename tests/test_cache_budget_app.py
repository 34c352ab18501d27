"""The app's shared models, captures and explanations stay within the byte budget (issue 27, item 6): pages that
open one model after another do not pile them up, as caches bounded by a count of entries did."""

from __future__ import annotations

import gc
import weakref

import pytest
import streamlit as st

import pages._cache as page_cache
from test_app import assert_clean, charts, open_app
from videoattn_core.run.resource_cache import nbytes_of

MB = 2**20
BUDGET = 100 * MB  # TimeSformer-B at 64 px: depth 1 ≈ 42 MB, 2 ≈ 82 MB, 3 ≈ 122 MB of weights


@pytest.fixture()
def small_budget():
    st.cache_resource.clear()
    before = page_cache.SHARED.budget_bytes
    page_cache.SHARED.set_budget(BUDGET)
    yield page_cache.SHARED
    page_cache.SHARED.set_budget(before)
    st.cache_resource.clear()


def newest_model(cache):
    models = [value for key, value in cache.items() if key[0][1] == "_load_model"]
    return models[-1].model


def test_models_opened_one_after_another_are_evicted_within_the_budget(small_budget):
    cache = small_budget
    held = []
    for depth in (3, 2, 1):  # any two of the first models exceed the budget together
        at = open_app("attention", model="timesformer_base", depth=str(depth), img_size="64", explain="relevance")
        assert_clean(at)
        assert any(c.get("frames") for c in charts(at)), "the explanation is drawn"
        model = newest_model(cache)
        assert len(model.blocks) == depth
        held.append((depth, weakref.ref(model), nbytes_of(model)))
        del model, at
    gc.collect()
    # the evicted depth-2 model is freed (the depth-3 one is not asserted: the first AppTest run's page namespace,
    # its `loaded` included, stays referenced from outside the cache, through the page script's lambdas)
    assert held[1][1]() is None, "an evicted model is still in memory"
    assert held[2][1]() is not None
    stats = cache.stats()
    assert stats["evictions"] > 0 and stats["bytes"] <= BUDGET, stats
    models = [dict(key[1])["model_key"] for key in cache.keys() if key[0][1] == "_load_model"]
    assert [config.depth for _, config, *_ in models] == [1]  # only the last model opened is kept


def test_clearing_streamlits_caches_clears_the_budgeted_one(small_budget):
    at = open_app("attention", model="timesformer_base", depth="1", img_size="64")
    assert_clean(at)
    assert len(small_budget) > 0
    st.cache_resource.clear()
    at.run()  # the next call of a budgeted function sees the clear
    assert_clean(at)
    assert all(key[0][1] != "explanation" for key in small_budget.keys())
    assert small_budget.stats()["misses"] >= 2
