"""Fetching published weights into the standard caches, verified.

torchvision and official files go to torch hub's checkpoint directory (``$TORCH_HOME/hub/checkpoints``), streamed
with every read bounded in time and resumed after an interruption (:func:`_fetch_url`); Hugging Face repositories go
to the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) through
:func:`huggingface_hub.hf_hub_download`, which
writes the cache layout (blobs, snapshots per commit, refs per revision) and resumes an interrupted transfer
from its ``.incomplete`` blob. On top of both, this module verifies what the source lets us verify — the full
sha256 (Hugging Face LFS pointers), the sha256 prefix in the file name (torchvision) and the published size —
and turns failures into :class:`WeightsError` messages that say what happened and where a file fetched by hand
can be placed.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import WeightsError
from .lookup import WeightsEntry, get_entry


def torch_hub_checkpoints() -> Path:
    """torch hub's checkpoint directory: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` by default)."""
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache`` + ``/huggingface/hub`` (read at each call: ``huggingface_hub`` reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hf_repo_dir(repo: str) -> Path:
    return hf_hub_cache() / ("models--" + repo.replace("/", "--"))


def _hf_snapshot(repo: str, filename: str, revision: str = "main") -> Path | None:
    """The snapshot directory holding ``filename`` for ``repo`` in the HF cache: the one ``refs/<revision>`` (or
    the commit ``revision``) names first, then the most recent one holding weights."""
    root = _hf_repo_dir(repo)
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates: list[Path] = [snapshots / revision]
    ref = root / "refs" / revision
    if ref.is_file():
        candidates.insert(0, snapshots / ref.read_text().strip())
    candidates += sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime,
                         reverse=True)
    names = (filename, "model.safetensors", "pytorch_model.bin")
    for snap in candidates:
        if any((snap / n).is_file() for n in names):
            return snap
    return None


def cached_path(entry: str | WeightsEntry) -> Path | None:
    """Where ``entry`` already sits in the standard caches, or ``None``."""
    entry = get_entry(entry)
    if entry.hf_repo:
        return _hf_snapshot(entry.hf_repo, entry.filename, entry.hf_revision)
    path = torch_hub_checkpoints() / entry.filename
    return path if path.is_file() else None


def target_path(entry: str | WeightsEntry) -> Path:
    """Where :func:`get_weights` stores ``entry`` (and where a file downloaded by hand can be placed)."""
    entry = get_entry(entry)
    if entry.hf_repo:
        return _hf_repo_dir(entry.hf_repo) / "snapshots" / entry.hf_revision / entry.filename
    return torch_hub_checkpoints() / entry.filename


def get_weights(entry: str | WeightsEntry, *, progress: bool = True, timeout: float = 30.0) -> Path:
    """A local path for ``entry``'s weights: from the standard caches, else downloaded there and verified.

    torchvision and official files go to torch hub's checkpoint directory and the path of the file is returned;
    Hugging Face repositories go to the HF cache (``config.json`` beside the weights) and the snapshot directory
    is returned, which :func:`~videoattn_core.weights.checkpoints.load_checkpoint` reads with its labels. Without network
    the :class:`WeightsError` names the URL and the path where the file can be placed by hand. ``timeout``
    bounds the requests for metadata and, for torch hub files, every read of the transfer: it runs as long as data
    comes, and an interrupted one resumes where it stopped.
    """
    entry = get_entry(entry)
    found = cached_path(entry)
    if found is not None:
        return found
    if not entry.direct:
        raise WeightsError(f"{entry.name} cannot be downloaded automatically (hosted at {entry.url}); download it "
                           f"by hand and place it at {target_path(entry)}")
    if entry.hf_repo:
        return _fetch_hf(entry, progress, timeout)
    dest = torch_hub_checkpoints() / entry.filename
    _fetch_url(entry, dest, progress, timeout)
    return dest


def _manual(url: str, path: Path) -> str:
    return f"download it by hand from {url} and place it at {path}"


def _fetch_url(entry: WeightsEntry, dest: Path, progress: bool, timeout: float) -> None:
    """The file streamed into ``<dest>.partial``, verified, then moved to ``dest``.

    A HEAD request first reports an unreachable or moved file quickly and gives the length the transfer must reach.
    Every request and every read waits at most ``timeout`` seconds, so a server that stops sending ends in a
    :class:`WeightsError` rather than a transfer that hangs. What arrived stays in the ``.partial`` file, and the
    next attempt asks only for the rest (an HTTP range request; from the start where the server ignores ranges).
    One process at a time fetches a file: the others wait on a lock on the ``.partial`` file, then find it fetched.
    """
    url, where = entry.url, _manual(entry.url, dest)
    partial = dest.with_name(dest.name + ".partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = _locked(partial)
    except OSError as exc:
        raise WeightsError(f"cannot write to {dest.parent} ({exc.strerror or exc}); {where}") from None
    with out:
        if dest.is_file():  # fetched by another process while this one waited: what this one holds is not needed
            partial.unlink()
            return
        try:
            length = _head_length(url, timeout)
            if progress:
                print(f"downloading {url} to {dest}", file=sys.stderr)
            _stream(url, out, length, timeout, progress)
        except TimeoutError:
            raise WeightsError(f"the transfer of {url} stalled: nothing arrived for {timeout:g} s; run again to "
                               f"resume, or {where}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise _network_error(exc, url, where) from None
        received = os.fstat(out.fileno()).st_size
        if length is not None and received != length:
            raise WeightsError(f"the transfer of {url} was interrupted: received {received} of {length} bytes; run "
                               f"again to resume, or {where}")
        _verify(partial, url, entry)
        os.replace(partial, dest)


def _locked(path: Path):
    """``path`` opened for appending (created if missing) under an exclusive lock held until it is closed (POSIX;
    elsewhere nothing is locked). A file that another holder renamed or removed while this one waited is not
    the one at ``path`` any more: the one there now is opened and locked instead."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return open(path, "a+b")
    while True:
        file = open(path, "a+b")
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            if os.path.samefile(path, file.fileno()):
                return file
        except FileNotFoundError:  # removed meanwhile, by the holder of a newer file at ``path``
            pass
        file.close()


def _stream(url: str, out, length: int | None, timeout: float, progress: bool) -> None:
    """Append ``url``'s bytes to ``out`` (an ``a+b`` file), asking only for what it does not hold yet."""
    start = os.fstat(out.fileno()).st_size
    if length is not None and start > length:  # not a beginning of this file
        out.truncate(0)
        start = 0
    if length is not None and start == length:
        return
    headers = {"User-Agent": "torch.hub", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if not (start and exc.code == 416):  # 416: the range does not fit the file, which must have changed
            raise
        out.truncate(0)
        return _stream(url, out, length, timeout, progress)
    with response:
        if start and response.status != 206:  # the whole file came: the server ignores ranges
            out.truncate(0)
            start = 0
        received, shown, started = start, time.monotonic(), time.monotonic()
        while chunk := response.read1(1 << 20):  # what has arrived (read() waits for 1 MiB, and a timeout loses it)
            out.write(chunk)
            received += len(chunk)
            if progress and time.monotonic() - shown >= 1:
                shown = time.monotonic()
                total = f" of {length / 2**20:.0f}" if length else ""
                print(f"\r  {received / 2**20:.0f}{total} MiB", end="", file=sys.stderr, flush=True)
        out.flush()
    if progress and shown > started:  # a progress line was written: end it
        print(file=sys.stderr)


def _head_length(url: str, timeout: float) -> int | None:
    """The file's length from a HEAD request (None when the server does not say, or refuses HEAD)."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "torch.hub"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        if exc.code in (405, 501):  # HEAD not supported: the download still says whether the file is there
            return None
        raise
    return int(length) if length and length.isdigit() else None


def _network_error(exc: BaseException, url: str, where: str) -> WeightsError:
    """Our message for what the transfer of ``url`` raised: an HTTP status, a broken transfer, no network."""
    if isinstance(exc, urllib.error.HTTPError):
        return WeightsError(f"{url} answered {exc.code} {exc.reason}; the file may have moved: check the source "
                            f"page, or {where}")
    if isinstance(exc, (http.client.HTTPException, ConnectionResetError)):  # the server went away mid-transfer
        return WeightsError(f"the transfer of {url} was interrupted ({type(exc).__name__}); run again to resume, "
                            f"or {where}")
    if isinstance(exc, OSError) and not isinstance(exc, urllib.error.URLError) and exc.filename:
        return WeightsError(f"cannot write {exc.filename} ({exc.strerror or exc}); {where}")
    reason = getattr(exc, "reason", None) or exc
    return WeightsError(f"cannot reach {url} ({reason}): no network? To work offline, {where}")


def _fetch_hf(entry: WeightsEntry, progress: bool, timeout: float) -> Path:
    """``config.json`` and the weights of ``entry.hf_repo`` at ``entry.hf_revision`` into the HF cache.

    Each file's metadata is asked for first without retries (``get_hf_file_metadata``), so that no network or a
    missing file is reported at once: ``hf_hub_download`` retries a failed request for about 20 s with backoff
    before it gives up."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    from tqdm.auto import tqdm

    quiet = None if progress else functools.partial(tqdm, disable=True)  # huggingface_hub accepts a callable
    endpoint, repo, revision = hf_endpoint(), entry.hf_repo, entry.hf_revision
    snapshot = None
    for name in ("config.json", entry.filename):
        url = hf_hub_url(repo, name, revision=revision, endpoint=endpoint)
        where = _manual(url, target_path(entry).parent / name)
        stage = "metadata"
        try:
            get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
            stage = "transfer"
            path = Path(hf_hub_download(repo, name, revision=revision, cache_dir=hf_hub_cache(), endpoint=endpoint,
                                        etag_timeout=timeout, tqdm_class=quiet))
        except HfHubHTTPError as exc:
            response = exc.response
            status = f"{response.status_code} {response.reason_phrase}" if response is not None else str(exc)
            raise WeightsError(f"{url} answered {status}; the file may have moved: check the source page, "
                               f"or {where}") from None
        except Exception as exc:  # noqa: BLE001 (httpx's transport errors are not OSErrors)
            if stage == "metadata":
                raise WeightsError(f"cannot reach {url} ({type(exc).__name__}: {exc}): no network? To work "
                                   f"offline, {where}") from None
            # huggingface_hub keeps the .incomplete blob: the next attempt resumes where this one stopped
            raise WeightsError(f"the transfer of {url} was interrupted ({type(exc).__name__}: {exc}); run again "
                               f"to resume, or {where}") from None
        if name == entry.filename:
            _verify(path, url, entry, blob=True)
        snapshot = path.parent
    return snapshot


def _verify(path: Path, url: str, entry: WeightsEntry, *, blob: bool = False) -> None:
    """Check ``path`` against the entry's sha256, sha256 prefix or published size; a file that fails is removed
    (for a Hugging Face snapshot link, its blob too) and the :class:`WeightsError` says what differed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    actual, received = digest.hexdigest(), path.stat().st_size
    problem = None
    if entry.sha256 and actual != entry.sha256:
        problem = f"sha256 mismatch: expected {entry.sha256}, got {actual}"
    elif entry.hash_prefix and not actual.startswith(entry.hash_prefix):
        problem = f"hash mismatch: the sha256 should start with {entry.hash_prefix} (from the file name), got {actual}"
    elif entry.size_mb and not _size_ok(received, entry.size_mb, entry.size_unit):
        problem = f"size mismatch: expected about {entry.size_mb:g} × {entry.size_unit} bytes, got {received}"
    if problem:
        if blob:
            path.resolve().unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise WeightsError(f"{url}: {problem}. The file was not kept (the source may have changed or the transfer "
                           f"been corrupted)")


def _size_ok(received: int, size: float, unit: int) -> bool:
    expected = size * unit
    return abs(received - expected) <= max(0.01 * expected, unit)  # published sizes are rounded
