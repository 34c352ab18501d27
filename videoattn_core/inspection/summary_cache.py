"""A disk cache of static summaries and growth curves, so that a restarted app does not summarise again.

Entries are plain JSON files (never pickles: reading one runs no code) under the user's cache folder
(``$VIDEOATTN_CACHE_DIR``, else ``$XDG_CACHE_HOME/videoattn/summaries``, else ``~/.cache/videoattn/summaries``),
one file per (kind, config, arguments). Each file names what it holds: the kind, the config's fields, the
arguments and :func:`code_fingerprint` — a hash of every source file of ``videoattn_core`` and of the torch
version — so an entry written by other code is never used, and the file name itself is a hash of the same, so a
code change simply misses. On reading, every field is checked against what was asked and against its type, the
payload against the digest stored beside it, and a summary's records against its totals (the records' own MACs
and parameters must add up to the headline numbers); anything that does not check out is ignored (and replaced
by the next write). The cache is a speed-up only: a miss recomputes, and a file that cannot be written is
skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import ModelConfig, jsonable
from ..models.layers import AttentionLayout
from .records import LayerRecord
from .summary import Summary, default_views

FORMAT = 1
#: a cache file larger than this is not read (the largest summary, ViT-g's, is a few hundred kB)
MAX_FILE_BYTES = 32 * 2**20


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of every ``*.py`` file of the package (path and bytes) and the torch version: any change to the code
    that computes summaries gives other cache keys."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def default_cache_dir() -> Path:
    explicit = os.environ.get("VIDEOATTN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "videoattn" / "summaries"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class DiskCache:
    """JSON entries under ``directory``; see the module docstring for what is checked on reading."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _header(self, kind: str, config: ModelConfig, args: dict[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, "code": code_fingerprint(), "kind": kind, "family": config.family,
                "config": jsonable(config.to_dict()), "args": jsonable(args)}

    def path(self, kind: str, config: ModelConfig, args: dict[str, Any]) -> Path:
        name = hashlib.sha256(_canonical(self._header(kind, config, args)).encode()).hexdigest()[:40]
        return self.directory / f"{kind}-{name}.json"

    def load(self, kind: str, config: ModelConfig, args: dict[str, Any]) -> Any | None:
        """The payload stored for these, or None (no file, or a file that does not check out)."""
        path = self.path(kind, config, args)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON, nested without end
            return None
        header = self._header(kind, config, args)
        if not isinstance(data, dict) or set(data) != {*header, "payload", "digest"}:
            return None
        if any(data[k] != v for k, v in header.items()):
            return None
        if data["digest"] != hashlib.sha256(_canonical(data["payload"]).encode()).hexdigest():
            return None
        return data["payload"]

    def store(self, kind: str, config: ModelConfig, args: dict[str, Any], payload: Any) -> None:
        """Write atomically (a temporary file renamed over the entry); errors are ignored (a cache)."""
        path = self.path(kind, config, args)
        entry = {**self._header(kind, config, args), "payload": payload,
                 "digest": hashlib.sha256(_canonical(payload).encode()).hexdigest()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError:
            pass

    def cached(self, kind: str, config: ModelConfig, args: dict[str, Any], compute: Callable[[], Any],
               encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Any:
        """``decode(payload)`` of a valid entry, else ``compute()`` (stored as ``encode(value)``). ``decode``
        raises ValueError, TypeError or KeyError for a payload that does not check out."""
        payload = self.load(kind, config, args)
        if payload is not None:
            try:
                return decode(payload)
            except (ValueError, TypeError, KeyError, AttributeError):
                pass
        value = compute()
        self.store(kind, config, args, encode(value))
        return value


# ----------------------------------------------------------------------------------------------- summaries


def _int(value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected an integer ≥ {low}, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a shape, got {value!r}")
    return tuple(_int(v) for v in value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


_LAYOUT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "kind": _str, "grid": _shape, "groups": _str, "tokens": _str, "cls": _bool,
    "q_grid": _optional(_shape), "kv_grid": _optional(_shape), "window": _optional(_shape),
    "shift": _optional(_shape), "padded_grid": _optional(_shape), "queries": _optional(_int),
}

_RECORD_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": _str, "type": _str, "depth": _int, "calls": _int, "input_shape": _optional(_shape),
    "output_shape": _optional(_shape), "input_shapes": lambda v: tuple(_shape(s) for s in v) if isinstance(v, list)
    else _shape(v), "input_layout": _str, "output_layout": _str, "params": _int, "params_total": _int,
    "macs": _int, "macs_total": _int, "category": _str, "attention_kind": _optional(_str),
    "attention_layout": _optional(lambda v: _layout(v)), "attention_path": _optional(_str),
    "is_leaf": _bool,
}


def _layout(value: Any) -> AttentionLayout:
    if not isinstance(value, dict) or set(value) != {f.name for f in fields(AttentionLayout)}:
        raise ValueError("attention layout fields")
    return AttentionLayout(**{k: _LAYOUT_FIELDS[k](v) for k, v in value.items()})


def _record_payload(r: LayerRecord) -> dict[str, Any]:
    out = {name: getattr(r, name) for name in _RECORD_FIELDS}
    if r.attention_layout is not None:
        out["attention_layout"] = {f.name: getattr(r.attention_layout, f.name) for f in fields(AttentionLayout)}
    return jsonable(out)


def _record(value: Any) -> LayerRecord:
    if not isinstance(value, dict) or set(value) != set(_RECORD_FIELDS):
        raise ValueError("record fields")
    return LayerRecord(**{k: _RECORD_FIELDS[k](v) for k, v in value.items()})


def summary_payload(summary: Summary) -> dict[str, Any]:
    """A summary as plain JSON values (records, totals, attention sizes, the memory peaks counted so far)."""
    return {"model": summary.model, "input_shape": list(summary.input_shape), "input_layout": summary.input_layout,
            "output_shape": list(summary.output_shape) if summary.output_shape is not None else None,
            "params": summary.params, "macs": summary.macs, "views": summary.views, "batch": summary.batch,
            "layers": [_record_payload(r) for r in summary.layers],
            "attention_elems": dict(summary.attention_elems),
            "peak_bytes": [[d, b, e, v] for (d, b, e), v in summary.peak_bytes.items()]}


def summary_from_payload(payload: Any, config: ModelConfig, frames: int | None = None,
                         size: int | None = None) -> Summary:
    """The :class:`Summary` a payload describes, for ``config`` on a ``frames``×``size``² clip (batch 1, the
    paper's views); ValueError when anything does not check out."""
    keys = {"model", "input_shape", "input_layout", "output_shape", "params", "macs", "views", "batch", "layers",
            "attention_elems", "peak_bytes"}
    if not isinstance(payload, dict) or set(payload) != keys:
        raise ValueError("summary fields")
    layers = [_record(r) for r in payload["layers"]] if isinstance(payload["layers"], list) else None
    if not layers:
        raise ValueError("summary layers")
    params, macs = _int(payload["params"]), _int(payload["macs"])
    if sum(r.params for r in layers) != params or sum(r.macs for r in layers) != macs:
        raise ValueError("the records do not add up to the totals")
    input_layout = _str(payload["input_layout"])
    if input_layout != config.input_layout or _shape(payload["input_shape"]) != config.input_shape(frames, size, 1):
        raise ValueError("input shape or layout")
    if payload["views"] != default_views(config) or payload["batch"] != 1:
        raise ValueError("views or batch")
    elems = payload["attention_elems"]
    if not isinstance(elems, dict):
        raise ValueError("attention sizes")
    peaks: dict[tuple, int] = {}
    for item in payload["peak_bytes"]:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[2], bool)):
            raise ValueError("memory peaks")
        peaks[(_int(item[0], 1), _int(item[1], 1), item[2])] = _int(item[3])
    return Summary(model=_str(payload["model"]), family=config.family, config=config,
                   input_shape=_shape(payload["input_shape"]), input_layout=input_layout,
                   output_shape=_optional(_shape)(payload["output_shape"]), layers=layers, params=params, macs=macs,
                   views=_int(payload["views"], 1), batch=_int(payload["batch"], 1),
                   attention_elems={_str(k): _int(v) for k, v in elems.items()}, peak_bytes=peaks)


def growth_payload(curves: tuple[dict[str, tuple[list[int], list[float]]], list[str], int]) -> dict[str, Any]:
    series, dashed, current = curves
    return {"series": {k: [list(xs), list(ys)] for k, (xs, ys) in series.items()}, "dashed": list(dashed),
            "current": current}


def growth_from_payload(payload: Any) -> tuple[dict[str, tuple[list[int], list[float]]], list[str], int]:
    if not isinstance(payload, dict) or set(payload) != {"series", "dashed", "current"}:
        raise ValueError("growth fields")
    series = {}
    for name, value in payload["series"].items():
        xs, ys = value
        if len(xs) != len(ys):
            raise ValueError("growth points")
        series[_str(name)] = ([_int(x, 1) for x in xs], [_count(y) for y in ys])
    dashed = [_str(d) for d in payload["dashed"]]
    if not set(dashed) <= set(series):
        raise ValueError("dashed series")
    return series, dashed, _int(payload["current"], 1)


def _count(value: Any) -> float:
    """A MAC count as the curves hold it (a float of a whole number ≥ 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf") \
            or value != int(value):
        raise ValueError(f"expected a count, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------------------- entry points


def cached_summary(config: ModelConfig, frames: int | None = None, size: int | None = None,
                   cache: DiskCache | None = None) -> Summary:
    """:func:`~videoattn_core.inspection.summarize` of ``config`` through the disk cache."""
    from .summary import summarize

    cache = cache or DiskCache()
    return cache.cached("summary", config, {"frames": frames, "size": size},
                        lambda: summarize(config, frames, size), summary_payload,
                        lambda payload: summary_from_payload(payload, config, frames, size))


def save_summary(summary: Summary, frames: int | None = None, size: int | None = None,
                 cache: DiskCache | None = None) -> None:
    """Store ``summary`` again (after its memory estimate counted a peak, so that a restart need not count it)."""
    (cache or DiskCache()).store("summary", summary.config, {"frames": frames, "size": size},
                                 summary_payload(summary))


def cached_growth_curves(config: ModelConfig, axis: str, summarize: Callable[..., Summary] | None = None,
                         cache: DiskCache | None = None):
    """:func:`~videoattn_core.cost.growth.growth_curves` through the disk cache; a miss computes (and stores) both
    axes at once (one model built per attention scheme), so the other axis is then a hit."""
    from ..cost.growth import growth_curves_for

    cache = cache or DiskCache()
    payload = cache.load("growth", config, {"axis": axis})
    if payload is not None:
        try:
            return growth_from_payload(payload)
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
    curves = growth_curves_for(config, ("frames", "size"),
                               summarize or (lambda c: cached_summary(c, cache=cache)))
    for name, value in curves.items():
        cache.store("growth", config, {"axis": name}, growth_payload(value))
    return curves[axis]


def warm(presets: list[str] | None = None, cache: DiskCache | None = None) -> None:
    """Fill the cache with what the Model page shows for each preset (summary, fp32 memory peak, both growth
    curves); entries already there are read, not recomputed. ``python -m videoattn_core.inspection.summary_cache``
    runs it for every preset (the app starts it in the background, see ``app.py``)."""
    from ..registry import get_preset, list_models

    cache = cache or DiskCache()
    parent = os.getppid()
    for name in presets or list_models():
        if os.getppid() != parent:  # the server that started us is gone: nobody will read what we would write
            return
        config = get_preset(name).config
        try:
            summary = cached_summary(config, cache=cache)
            if (4, 1, False) not in summary.peak_bytes:
                summary.memory_estimate(4, 1)
                save_summary(summary, cache=cache)
            for axis in ("frames", "size"):
                cached_growth_curves(config, axis, cache=cache)
        except Exception:  # noqa: BLE001 — a preset that cannot be summarised is the app's to report, not ours
            continue


if __name__ == "__main__":
    import sys

    warm(sys.argv[1:] or None)
