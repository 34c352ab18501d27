"""The results file: a JSON Lines file with one header line (what was evaluated) and one row per clip.

A row is ``{"path", "label", "target", "top5": [{label, index, probability}], "error", "decode_s", "forward_s"}``
(``target``: the model class the dataset's label maps to; ``error``: why the clip could not be classified, else
``null``). Rows are written one at a time and flushed, so an interrupted run leaves a valid file; a partial last
line (a crash mid-write) is cut off when the file is opened again. A rerun with the same file skips the clips that
have a row without an error. Under torchrun each rank writes ``FILE.rank{r}``; rank 0 merges them (their rows
sent to it over the process group) into ``FILE`` in the dataset's order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Iterable

from ..errors import ConfigError

HEADER = "evaluation"
#: the header fields two runs must share to write into one file
SAME_RUN = ("model", "overrides", "weights", "seed", "views", "data", "match")
TIMING = ("decode_s", "forward_s")


def shard_path(out: str | Path, rank: int) -> Path:
    return Path(f"{out}.rank{rank}")


def _parse(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
    """``(header, rows, bytes up to the last complete line)`` of a results file; lines that are not JSON objects
    are skipped."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    header, rows = None, []
    for line in data[:end].splitlines():
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(item, dict):
            continue
        if HEADER in item:
            header = header or item[HEADER]
        elif "path" in item:
            rows.append(item)
    return header, rows, end


def read_results(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, rows)`` of a results file; :class:`ConfigError` when it is not one."""
    path = Path(path)
    try:
        header, rows, _ = _parse(path)
    except OSError as exc:
        raise ConfigError(f"results file {path} cannot be read: {exc.strerror or exc}", field="results") from None
    if header is None:
        raise ConfigError(f"{path} is not a results file of `evaluate` (no header line)", field="results")
    return header, rows


def parse_results(text: bytes | str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`read_results` of a file's content (an upload)."""
    import tempfile

    raw = text.encode() if isinstance(text, str) else text
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as handle:
        handle.write(raw)
        handle.flush()
        return read_results(handle.name)


def _check_header(path: Path, found: dict[str, Any] | None, header: dict[str, Any]) -> None:
    if found is None:
        return
    differ = [k for k in SAME_RUN if found.get(k) != header.get(k)]
    if differ:
        raise ConfigError(f"{path} holds results of another evaluation ({', '.join(differ)} differ: "
                          f"{', '.join(f'{k}={found.get(k)!r}' for k in differ)}); choose another --out or delete "
                          f"it", field="out")


def done_paths(out: str | Path, header: dict[str, Any]) -> set[str]:
    """The clips already classified without an error, in ``out`` and in any rank's shard of it."""
    out = Path(out)
    done: set[str] = set()
    for path in [out, *sorted(out.parent.glob(out.name + ".rank*"))]:
        if path.is_file():
            found, rows, _ = _parse(path)
            _check_header(path, found, header)
            done |= {r["path"] for r in rows if not r.get("error")}
    return done


def open_rows(path: str | Path, header: dict[str, Any]) -> IO[str]:
    """``path`` opened for appending rows: created with the header line, or cut after its last complete line."""
    path = Path(path)
    try:
        if path.is_file():
            found, _, end = _parse(path)
            _check_header(path, found, header)
            with path.open("r+b") as handle:
                handle.truncate(end)
            handle = path.open("a", encoding="utf-8")
            if found is None:
                handle.write(json.dumps({HEADER: header}) + "\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("w", encoding="utf-8")
            handle.write(json.dumps({HEADER: header}) + "\n")
        handle.flush()
        return handle
    except OSError as exc:
        raise ConfigError(f"--out {path} cannot be written: {exc.strerror or exc}", field="out") from None


def write_row(handle: IO[str], row: dict[str, Any]) -> None:
    handle.write(json.dumps(row) + "\n")
    handle.flush()


def shard_rows(out: str | Path, rank: int) -> list[dict[str, Any]]:
    """The rows of a rank's shard (what it sends to rank 0, which may not see the file on another machine)."""
    path = shard_path(out, rank)
    return _parse(path)[1] if path.is_file() else []


def merge(out: str | Path, header: dict[str, Any], order: Iterable[str],
          sent: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Gather ``out``, its shards and the rows other ranks ``sent`` into ``out`` (header, then rows in ``order``,
    rows of other clips after them; for a clip with several rows, one without an error, else the last), written
    atomically; the shards this process sees are then deleted. Returns the rows of ``order``."""
    out = Path(out)
    shards = sorted(out.parent.glob(out.name + ".rank*"))
    best: dict[str, dict[str, Any]] = {}

    def keep(rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if row["path"] not in best or best[row["path"]].get("error"):  # a later row replaces an error
                best[row["path"]] = row

    for path in [out, *shards]:
        if path.is_file():
            found, rows, _ = _parse(path)
            _check_header(path, found, header)
            keep(rows)
    keep(sent)
    order = list(order)
    position = {p: i for i, p in enumerate(order)}
    rows = sorted(best.values(), key=lambda r: (position.get(r["path"], len(order)), r["path"]))
    tmp = out.with_name(out.name + ".merging")
    tmp.write_text(json.dumps({HEADER: header}) + "\n" + "".join(json.dumps(r) + "\n" for r in rows),
                   encoding="utf-8")
    os.replace(tmp, out)
    for path in shards:
        path.unlink(missing_ok=True)
    return [r for r in rows if r["path"] in position]


RESULTS_DIR_ENV = "VIDEOATTN_RESULTS_DIR"


def results_folder() -> Path | None:
    """The folder whose results files the app may open (``$VIDEOATTN_RESULTS_DIR``), or ``None``."""
    value = os.environ.get(RESULTS_DIR_ENV)
    return Path(value).expanduser().resolve() if value else None


def list_results(folder: Path, limit: int = 200) -> list[str]:
    """The ``.jsonl`` files under ``folder``, as paths relative to it (newest first)."""
    found = sorted(folder.rglob("*.jsonl"), key=lambda p: (-p.stat().st_mtime, str(p)))[:limit]
    return [str(p.relative_to(folder)) for p in found]


def results_file(text: str, folder: Path | None) -> Path:
    """The results file ``text`` names (relative to ``folder``, or absolute), refused with a :class:`ConfigError`
    when no folder is configured, or the path leads outside it, or is not a ``.jsonl`` file there."""
    if folder is None:
        raise ConfigError(f"no results folder is configured: set {RESULTS_DIR_ENV} to the folder whose results "
                          f"files the app may open, or upload a file", field="results")
    path = (folder / text.strip()).resolve()
    if not path.is_relative_to(folder):
        raise ConfigError(f"{text!r} is outside the results folder {folder}; only files under it can be opened",
                          field="results")
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        raise ConfigError(f"{text!r}: no .jsonl results file of that name under {folder}", field="results")
    return path


def run_link(header: dict[str, Any], clip: str | None = None) -> dict[str, str] | None:
    """The Run page's query parameters for the model and weights of an evaluation (and ``clip``, a clip id the
    Run page accepts), or ``None`` when its model cannot travel in a link (a local directory); a checkpoint file
    cannot travel either, so its link runs random weights."""
    from ..errors import VideoAttnError
    from ..links import make_link
    from ..registry import get_config, get_preset
    from ..weights.lookup import CATALOG

    model = str(header.get("model", ""))
    if model.startswith(("/", ".", "~")) or Path(model).is_dir():  # a local directory never travels in a link
        return None
    try:
        preset = get_preset(model).name
        config = get_config(preset, **(header.get("overrides") or {}))
    except (VideoAttnError, KeyError, TypeError):
        return None
    weights = "random" if header.get("seed") is not None else header.get("weights")
    page = {"weights": weights if weights == "random" or weights in CATALOG else None, "clip": clip,
            "views": "protocol" if header.get("views", [1, 1]) != [1, 1] else None}
    return make_link(preset, config, page)


DATA_DIR_ENV = "VIDEOATTN_DATA_DIR"


def clip_folders() -> list[Path]:
    """The folders whose clips the app's Run page may open by path (``$VIDEOATTN_DATA_DIR``, several separated by
    ``os.pathsep``)."""
    value = os.environ.get(DATA_DIR_ENV, "")
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def server_clip(text: str, *, folder: bool = False) -> Path:
    """The clip file ``text`` names (with ``folder``: the file or folder, an annotation file or a dataset's root),
    when it lies under one of :func:`clip_folders` and exists; else a :class:`ConfigError` saying why (a link or
    a page must not open any file of the server)."""
    folders = clip_folders()
    if not folders:
        raise ConfigError(f"clips on the server open only under the folders {DATA_DIR_ENV} names, and it is not set",
                          field="clip")
    path = Path(text).expanduser().resolve()
    if not any(path.is_relative_to(f) for f in folders):
        raise ConfigError(f"{text} is outside the clip folders ({', '.join(map(str, folders))})", field="clip")
    if not (path.exists() if folder else path.is_file()):
        raise ConfigError(f"{text}: no such {'file or folder' if folder else 'clip'} on the server", field="clip")
    return path
