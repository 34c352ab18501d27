"""The byte-budgeted cache of shared objects (:mod:`videoattn_core.run.resource_cache`): what it counts, what it evicts
and when, that it gives memory back, and that threads share it safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import videoattn_core as vac
from videoattn_core.run import resource_cache
from videoattn_core.run.resource_cache import ByteBudgetCache, cached, nbytes_of

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20


def blob(mb: float) -> np.ndarray:
    return np.zeros(int(mb * MB), dtype=np.uint8)


def cache_of(budget_mb: float, calls: list | None = None) -> ByteBudgetCache:
    release = (lambda collect: calls.append(collect)) if calls is not None else None
    return ByteBudgetCache(int(budget_mb * MB), release=release)


# ------------------------------------------------------------------------------------------------ counting

def test_a_model_counts_its_parameters_and_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(100, 50), torch.nn.BatchNorm1d(50))
    expected = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size()
                                                                     for b in model.buffers())
    assert nbytes_of(model) == expected == (100 * 50 + 50 + 2 * 50) * 4 + (2 * 50 * 4 + 8)


def test_shared_memory_counts_once_and_meta_tensors_not_at_all():
    t = torch.zeros(1000)  # 4000 bytes
    assert nbytes_of([t, t[10:], t.view(10, 100), t.numpy(), t.numpy()[5:]]) == 4000
    a = np.zeros(300)
    assert nbytes_of({"a": a, "view": a[::2], "again": (a,)}) == 2400
    assert nbytes_of(torch.empty(10**9, device="meta")) == 0
    assert nbytes_of(b"x" * 123) == 123


def test_results_count_the_arrays_they_hold():
    @dataclass
    class Result:
        tokens: np.ndarray
        frames: list
        label: str

    class Holder:
        def __init__(self):
            self.result = Result(np.zeros((4, 8, 8), np.float32), [np.zeros(10, np.uint8)], "x")
            self.model = torch.nn.Linear(4, 4, bias=False)

    assert nbytes_of(Holder()) == 4 * 8 * 8 * 4 + 10 + 16 * 4


def test_a_run_model_counts_its_weights():
    run = vac.runtime.RunModel(vac.build_model("timesformer_base", depth=1, img_size=32), ["a"], "x", True, "")
    params = sum(p.numel() * p.element_size() for p in run.model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in run.model.buffers())
    assert nbytes_of(run) == params + buffers > 0


# ------------------------------------------------------------------------------------------------ budget

def test_least_recently_used_go_first_and_a_hit_counts_as_use():
    calls = []
    cache = cache_of(3.5, calls)
    for key in "abc":
        cache.get(key, lambda: blob(1))
    assert cache.keys() == ["a", "b", "c"] and cache.nbytes == 3 * MB
    assert calls == [False, False, False]  # memory handed back after each computation, no collection needed
    cache.get("a", lambda: pytest.fail("kept: not computed again"))  # "a" used: "b" is now the oldest
    cache.get("d", lambda: blob(1))
    assert cache.keys() == ["c", "a", "d"] and cache.nbytes == 3 * MB
    assert calls[-1] is True  # an eviction: collected and handed back
    cache.get("e", lambda: blob(2))  # needs two to go
    assert cache.keys() == ["d", "e"] and cache.nbytes == 3 * MB
    assert cache.stats() == {"entries": 2, "bytes": 3 * MB, "budget_bytes": int(3.5 * MB), "hits": 1,
                             "misses": 5, "evictions": 3}


def test_an_entry_larger_than_the_budget_stays_alone_until_the_next():
    cache = cache_of(2)
    cache.get("small", lambda: blob(1))
    big = cache.get("big", lambda: blob(5))
    assert cache.keys() == ["big"] and cache.nbytes == 5 * MB and big.nbytes == 5 * MB
    cache.get("big", lambda: pytest.fail("the newest entry is kept, even over the budget"))
    cache.get("next", lambda: blob(1))
    assert cache.keys() == ["next"] and cache.nbytes == MB
    cache.set_budget(0)
    assert cache.keys() == ["next"]  # the newest stays with any budget
    cache.get("last", lambda: blob(0.5))
    assert cache.keys() == ["last"]


def test_the_newest_entry_of_each_function_stays():
    """A page's model, capture and explanation are used together: a new capture never evicts the model it was
    computed from, even when the two exceed the budget (else each rerun would build both again)."""
    cache = ByteBudgetCache(3 * MB, release=None, kind=resource_cache.function_of)

    @cached(cache)
    def load_model(name: str):
        return blob(2)

    @cached(cache)
    def capture(name: str, layer: int):
        return blob(1.5)

    load_model("a")
    capture("a", 0)  # 3.5 MiB: over the budget, but each is its function's newest
    assert cache.nbytes == int(3.5 * MB) and len(cache) == 2
    capture("a", 1)  # the older capture goes, the model stays
    assert [k[1] for k in cache.keys()] == [(("name", "a"),), (("name", "a"), ("layer", 1))]
    load_model("b")  # the older model goes
    assert [k[1] for k in cache.keys()] == [(("name", "a"), ("layer", 1)), (("name", "b"),)]
    load_model("a")  # a model built again: model "b" goes, the newest capture stays
    assert [k[1] for k in cache.keys()] == [(("name", "a"), ("layer", 1)), (("name", "a"),)]


def test_a_failed_computation_keeps_nothing_and_is_tried_again():
    cache = cache_of(10)
    with pytest.raises(ValueError, match="does not apply"):
        cache.get("k", lambda: (_ for _ in ()).throw(ValueError("does not apply")))
    assert len(cache) == 0 and cache.nbytes == 0
    assert cache.get("k", lambda: 42) == 42 and "k" in cache


def test_evicted_objects_are_freed():
    cache = cache_of(1.5)
    model = cache.get("m1", lambda: torch.nn.Linear(512, 512))  # 1 MiB of weights
    import weakref

    gone = weakref.ref(model)
    del model
    cache.get("m2", lambda: torch.nn.Linear(512, 512))
    assert gone() is None and cache.keys() == ["m2"]


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("VIDEOATTN_CACHE_MB", "300")
    assert ByteBudgetCache().budget_bytes == 300 * MB
    monkeypatch.delenv("VIDEOATTN_CACHE_MB")
    assert ByteBudgetCache().budget_bytes == resource_cache.DEFAULT_BUDGET_MB * MB
    for bad in ("lots", "-5", "1.5"):
        monkeypatch.setenv("VIDEOATTN_CACHE_MB", bad)
        with pytest.raises(vac.ConfigError, match=r"VIDEOATTN_CACHE_MB=.* whole number of megabytes ≥ 0"):
            ByteBudgetCache()


def test_cached_functions_key_by_their_arguments_except_underscored_ones():
    cache = cache_of(10)
    runs = []

    @cached(cache)
    def forward(key: str, size: int = 1, _model=None):
        runs.append((key, size))
        return blob(size)

    @cached(cache)
    def other(key: str):
        runs.append(("other", key))
        return blob(1)

    forward("a", _model="one")
    forward("a", 1, _model="another")  # the same key: _model is not part of it
    forward("a", size=2)
    other("a")
    assert runs == [("a", 1), ("a", 2), ("other", "a")] and len(cache) == 3
    forward.clear()
    assert len(cache) == 1 and cache.nbytes == MB
    forward("a")
    assert runs[-1] == ("a", 1)


# ------------------------------------------------------------------------------------------------ threads

def test_threads_asking_for_one_key_compute_it_once():
    cache = cache_of(100)
    computed, results = [], []

    def slow():
        computed.append(threading.get_ident())
        time.sleep(0.2)
        return blob(1)

    threads = [threading.Thread(target=lambda: results.append(cache.get("shared", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(computed) == 1 and len(results) == 8 and all(r is results[0] for r in results)
    assert cache.stats()["misses"] == 1 and cache.stats()["hits"] == 7


def test_many_threads_keep_the_accounting_and_the_budget():
    cache = cache_of(5)
    errors = []

    def work(worker: int):
        try:
            for i in range(60):
                key = (worker * 7 + i) % 23
                value = cache.get(key, lambda: blob(0.25 + (key % 4) * 0.25))
                assert value.nbytes == int((0.25 + (key % 4) * 0.25) * MB)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with cache._lock:
        kept = sum(e.nbytes for e in cache._entries.values())
        assert cache._computing == {}
    assert cache.nbytes == kept <= 5 * MB


# ------------------------------------------------------------------------------------------------ memory

def test_evicting_gives_the_memory_back_to_the_system():
    """In a process whose heaps keep freed memory (as the app's runs set it), evicted tensors leave the resident set
    only because the cache trims the heaps; without that they stay."""
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        import torch
        from videoattn_core.cost import memory
        from videoattn_core.run import resource_cache

        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

        assert memory.keep_allocator()
        out = []
        for release in (resource_cache.release_memory, None):
            cache = resource_cache.ByteBudgetCache(2**40, release=release)
            before = rss()
            for i in range(4):  # 4 × 200 MiB, filled so that their pages are resident
                cache.get(i, lambda: torch.ones(50 * 2**20))
            held = rss()
            cache.clear()
            out.append((held - before, rss() - before))
        print(out)
    """ % str(ROOT))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (held, after), (held_kept, after_kept) = eval(result.stdout.strip().splitlines()[-1])
    assert held_kept > 700 and held > 700  # MiB: the four tensors were resident
    assert after_kept > 700, "without the trim the heaps keep the memory (the premise)"
    assert after < 100, f"{after:.0f} MiB still held after the evictions"
