"""Shared objects (models, captures, explanations) kept in memory up to a budget of bytes, least recently used out
first, and their memory given back to the system when they go.

A server that keeps what its visitors computed by count (the two last models, the three last captures, …) holds
whatever those happen to weigh: a TimeSformer-B is 0.5 GB, a V-JEPA 2 ViT-L 1.5 GB, a capture of every layer a few
hundred MB. :class:`ByteBudgetCache` counts what each entry holds instead (:func:`nbytes_of`: parameter and buffer
bytes of a model, the bytes of every tensor and array of a result, each storage once) and evicts the least recently
used entries while the total is over its budget. The newest entry of each kind (of each function, through
:func:`cached`) always stays, even over the budget: a page uses its model, its capture and its explanation together,
and evicting the model for the capture would build both again on every rerun; everything older goes first.

Freed tensors do not leave the process by themselves: glibc's heaps keep freed blocks below the mmap threshold
(:func:`videoattn_core.cost.memory.keep_allocator` raises it to 1 GiB), so a server's resident set would stay at its
highest. After every computation of a new entry and every eviction the cache hands that memory back
(:func:`release_memory`: a garbage collection after an eviction, then ``malloc_trim``).

The budget is ``VIDEOATTN_CACHE_MB`` megabytes (2²⁰ bytes) when set, else :data:`DEFAULT_BUDGET_MB`. Thread-safe:
one lock guards the entries, and a key being computed is computed once (other callers of that key wait for it),
while other keys compute in parallel. :func:`cached` wraps a function as ``st.cache_resource`` does (arguments
whose names start with ``_`` are not part of the key), without importing Streamlit.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import inspect
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

import numpy as np
import torch

from ..errors import ConfigError
from ..cost.memory import can_pin_allocator

#: the environment variable that sets the budget, in megabytes (2²⁰ bytes)
BUDGET_ENV = "VIDEOATTN_CACHE_MB"
#: the default budget: a base-size model (TimeSformer-B, 0.49 GB) with its capture and explanation, and what the
#: pages computed before it. Through the walk of ``bench/server_memory.py`` the server ends at 1.9 GB with it (7.0
#: GB with the caches bounded by entry counts); its peaks are those of single maps, which the budget does not set
DEFAULT_BUDGET_MB = 1024
_MAX_VISITS = 100_000  # objects walked by nbytes_of before it stops looking (containers of plain numbers)

T = TypeVar("T")


def budget_from_env(default_mb: int = DEFAULT_BUDGET_MB) -> int:
    """The budget in bytes: ``VIDEOATTN_CACHE_MB`` megabytes when set, else ``default_mb``. A value that is not a
    whole number ≥ 0 raises :class:`ConfigError` saying what is allowed."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return default_mb * 2**20
    try:
        mb = int(text)
    except ValueError:
        mb = -1
    if mb < 0:
        raise ConfigError(f"{BUDGET_ENV}={text!r} is not allowed: give the cache's budget as a whole number of "
                          f"megabytes ≥ 0 (0 keeps only the newest entry; unset: {default_mb})", field=BUDGET_ENV)
    return mb * 2**20


def nbytes_of(value: Any) -> int:
    """Bytes of the tensors and arrays ``value`` holds: a module's parameters and buffers, tensors (their storage,
    meta tensors nothing), NumPy arrays, bytes, found through dataclasses, mappings, sequences and objects'
    attributes. Memory shared by several of them (views, a NumPy array on a tensor's storage) counts once."""
    seen_objects: set[int] = set()
    seen_memory: set[tuple[str, int]] = set()
    total = 0
    stack = [value]
    visits = 0
    while stack and visits < _MAX_VISITS:
        obj = stack.pop()
        if obj is None or isinstance(obj, (str, int, float, bool, complex)) or id(obj) in seen_objects:
            continue
        seen_objects.add(id(obj))
        visits += 1
        if isinstance(obj, torch.Tensor):
            if obj.device.type == "meta" or obj.layout != torch.strided:
                continue
            storage = obj.untyped_storage()
            where = (str(storage.device), storage.data_ptr())
            if where not in seen_memory:
                seen_memory.add(where)
                total += storage.nbytes()
        elif isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            where = ("cpu", base.__array_interface__["data"][0])
            if where not in seen_memory:
                seen_memory.add(where)
                total += base.nbytes
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            total += len(obj)
        elif isinstance(obj, torch.nn.Module):
            stack.extend(obj.parameters())
            stack.extend(obj.buffers())
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            stack.extend(getattr(obj, f.name, None) for f in dataclasses.fields(obj))
        elif not isinstance(obj, type) and not callable(obj):  # an object's attributes (not a function's)
            stack.extend(getattr(obj, "__dict__", {}).values())
            stack.extend(getattr(obj, name, None) for name in getattr(type(obj), "__slots__", ()))
    return total


def release_memory(collect: bool = True) -> None:
    """Give freed memory back to the system: a garbage collection (``collect``: objects in reference cycles are
    freed only by it), then glibc's ``malloc_trim``, which returns the heaps' free pages (glibc on Linux)."""
    if collect:
        gc.collect()
    if can_pin_allocator():
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass


@dataclasses.dataclass
class _Entry:
    value: Any
    nbytes: int


class ByteBudgetCache:
    """Values by key, kept while their bytes (:func:`nbytes_of`, or ``size``) fit in ``budget_bytes`` (None:
    :func:`budget_from_env`), the least recently used evicted first; the newest entry of each kind (``kind(key)``,
    one kind by default) always stays. ``release``
    is called after a new entry was computed (``release(False)``) and after evictions (``release(True)``), outside
    the lock; by default :func:`release_memory`."""

    def __init__(self, budget_bytes: int | None = None, *, size: Callable[[Any], int] = nbytes_of,
                 release: Callable[[bool], None] | None = release_memory,
                 kind: Callable[[Hashable], Hashable] = lambda key: None):
        self.budget_bytes = budget_from_env() if budget_bytes is None else int(budget_bytes)
        if self.budget_bytes < 0:
            raise ConfigError(f"budget_bytes={budget_bytes} is not allowed: 0 or more", field="budget_bytes")
        self._size = size
        self._kind = kind
        self._release = release
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``key``, computed by ``compute()`` when not kept (an exception is raised to the caller and
        nothing is kept). Concurrent calls for one key compute it once."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.value
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:  # computed by another thread while this one waited
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry.value
            try:
                value = compute()
                nbytes = int(self._size(value))
                with self._lock:
                    self.misses += 1
                    # evicted and asked for again while a caller still waited on this key's first computation:
                    # two computations of one key can meet here, and the later replaces the earlier
                    replaced = self._entries.pop(key, None)
                    if replaced is not None:
                        self._bytes -= replaced.nbytes
                    self._entries[key] = _Entry(value, nbytes)
                    self._bytes += nbytes
                    evicted = self._evict_over_budget()
            finally:
                with self._lock:
                    self._computing.pop(key, None)
        self._after(evicted)
        return value

    def _evict_over_budget(self) -> list[_Entry]:
        evicted = []
        if self._bytes <= self.budget_bytes:
            return evicted
        newest = {self._kind(key): key for key in self._entries}  # the last of each kind: most recently used
        for key in [k for k in self._entries if k not in newest.values()]:  # least recently used first
            if self._bytes <= self.budget_bytes:
                break
            entry = self._entries.pop(key)
            self._bytes -= entry.nbytes
            evicted.append(entry)
        self.evictions += len(evicted)
        return evicted

    def _after(self, evicted: list[_Entry]) -> None:
        collect = bool(evicted)
        evicted.clear()  # the last references the cache held
        if self._release is not None:
            self._release(collect)

    def set_budget(self, budget_bytes: int) -> None:
        """A new budget, entries evicted at once to fit it (the newest of each kind stays)."""
        with self._lock:
            self.budget_bytes = int(budget_bytes)
            evicted = self._evict_over_budget()
        if evicted:
            self._after(evicted)

    def discard(self, match: Callable[[Hashable], bool] = lambda key: True) -> int:
        """Drop the entries whose key ``match`` accepts (all by default); how many went."""
        with self._lock:
            keys = [k for k in self._entries if match(k)]
            evicted = [self._entries.pop(k) for k in keys]
            self._bytes -= sum(e.nbytes for e in evicted)
        if evicted:
            self._after(evicted)
        return len(keys)

    def clear(self) -> None:
        self.discard()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes of the entries kept (as counted when each was computed)."""
        with self._lock:
            return self._bytes

    def items(self) -> list[tuple[Hashable, Any]]:
        """The entries kept, least recently used first (reading them does not count as a use)."""
        with self._lock:
            return [(key, entry.value) for key, entry in self._entries.items()]

    def keys(self) -> list[Hashable]:
        """The keys kept, least recently used first."""
        with self._lock:
            return list(self._entries)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes, "budget_bytes": self.budget_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


def function_of(key: Hashable) -> Hashable:
    """The kind of a key made by :func:`cached`: its function (module, qualified name)."""
    return key[0] if isinstance(key, tuple) and key else None


def cached(cache: ByteBudgetCache) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a function so that its results are kept in ``cache``, keyed by the function and its arguments as
    ``st.cache_resource`` keys them: arguments whose names start with ``_`` (a model, a clip passed along with
    the key that identifies it) are left out. The other arguments must be hashable. The wrapper's ``clear()``
    drops this function's entries. Give ``cache`` ``kind=function_of`` to keep each function's newest entry."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(fn)
        name = (fn.__module__, fn.__qualname__)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            key = (name, tuple((k, v) for k, v in bound.arguments.items() if not k.startswith("_")))
            return cache.get(key, lambda: fn(*args, **kwargs))

        call.clear = lambda: cache.discard(lambda key: key[0] == name)  # type: ignore[attr-defined]
        return call

    return wrap
