"""Models named by where they live: ``hf:ORG/NAME[@REVISION]`` on the Hugging Face Hub, or a local directory
holding a Hugging Face ``config.json``.

Wherever a preset name is accepted, such a reference is too (:func:`videoattn_core.registry.get_preset` opens it):
its family, hyperparameters, labels, scoring and clip reading come from the repository's own files
(:mod:`videoattn_core.weights.hf_reading`). Opening a model fetches only ``config.json`` and the processor config; the
weights are fetched when a run needs them (:meth:`HubModel.weights_location`).

Files come through ``huggingface_hub`` into the standard Hugging Face cache (``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), the revision resolved to a commit first, so every file of a
model comes from one commit; ``$HF_ENDPOINT`` names another Hub, ``$HF_TOKEN`` opens private and gated
repositories, and ``HF_HUB_OFFLINE=1`` reads the cache alone. Weights: ``model.safetensors`` is preferred, then
its sharded index, then ``pytorch_model.bin`` (read with ``weights_only=True``) and its index.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig, show_value
from ..errors import ConfigError, WeightsError
from ..registry import Preset, register_resolver

HF_PREFIX = "hf:"
CONFIG_FILE = "config.json"
PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
#: weights files in the order they are preferred (an index names its shards)
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
MAX_JSON_BYTES = 32 * 1024 ** 2  # a config with 100,000 labels is ~3 MB
#: what the command line says of its MODEL argument
MODEL_HELP = ("a preset (see `models`), a Hugging Face model as hf:ORG/NAME[@REVISION], or the directory holding its "
              "config.json")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_REVISION = re.compile(r"^[\w.\-/]{1,200}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelRef:
    """A model named by where it lives: a Hub repository (``repo_id`` at ``revision``) or a local ``path``."""

    text: str
    repo_id: str | None = None
    revision: str = "main"
    path: Path | None = None


def looks_like_ref(name: Any) -> bool:
    """Whether ``name`` is meant as a repository or a directory rather than a preset name."""
    return isinstance(name, (str, Path)) and (str(name).startswith(HF_PREFIX) or "/" in str(name)
                                              or str(name).startswith(("~", ".")) or os.sep in str(name))


def parse_ref(name: str | Path) -> ModelRef:
    """``hf:ORG/NAME[@REVISION]`` or the path of a directory holding ``config.json``; a :class:`ConfigError` says
    what is wrong with anything else."""
    text = str(name).strip()
    if text.startswith(HF_PREFIX):
        repo, _, revision = text[len(HF_PREFIX):].partition("@")
        if not _REPO_ID.match(repo) or "--" in repo or ".." in repo:
            raise ConfigError(f"{show_value(text)} is not a Hub model id: write hf:ORG/NAME or hf:ORG/NAME@REVISION "
                              f"(letters, digits, '-', '_' and '.')", field="model")
        if revision and (not _REVISION.match(revision) or ".." in revision):
            raise ConfigError(f"{show_value(text)} names the revision {show_value(revision)}, which is not a branch, "
                              f"tag or commit", field="model")
        return ModelRef(f"{HF_PREFIX}{repo}" + (f"@{revision}" if revision else ""), repo_id=repo,
                        revision=revision or "main")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{show_value(text, 80)} is neither a preset nor a directory; name a preset (see `models`), "
                          f"a Hugging Face model as hf:ORG/NAME, or a directory holding its config.json",
                          field="model")
    if not (path / CONFIG_FILE).is_file():
        raise ConfigError(f"the directory {path} holds no config.json: a Hugging Face model directory (as "
                          f"save_pretrained writes it) is expected", field="model")
    return ModelRef(str(path.resolve()), path=path.resolve())


def hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set: the cache alone is read (read at each call)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


@dataclass
class HubModel:
    """A Hugging Face video classifier, opened: what its ``config.json`` and processor say, and where it is."""

    ref: ModelRef
    directory: Path  # the local directory, or the cache snapshot of the resolved commit
    commit: str | None
    files: tuple[str, ...]
    hf_config: dict[str, Any]
    processor: dict[str, Any] | None
    processor_file: str | None
    family: str
    architecture: str
    config: ModelConfig
    labels: list[str] | None
    problem_type: str
    scoring: str
    recipe: Any  # catalog.records.Recipe
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.ref.text

    @property
    def weights_files(self) -> list[str]:
        """The weights file the run reads (the first of :data:`WEIGHTS_FILES` the repository holds)."""
        found = next((f for f in WEIGHTS_FILES if f in self.files), None)
        return [found] if found else []

    def description(self) -> str:
        where = (f"{self.ref.repo_id} @ {self.commit[:7] if self.commit else self.ref.revision}" if self.ref.repo_id
                 else str(self.directory))
        classes = f"{len(self.labels)} labels" if self.labels else f"{getattr(self.config, 'num_classes', '?')} classes"
        scores = ", multi-label (independent sigmoid scores)" if self.scoring == "sigmoid" else ""
        return f"{self.architecture} from {where} · {classes}{scores}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": "hub" if self.ref.repo_id else "directory", "id": self.ref.text,
                "repo_id": self.ref.repo_id, "revision": self.ref.revision if self.ref.repo_id else None,
                "commit": self.commit, "directory": str(self.directory), "architecture": self.architecture,
                "family": self.family, "model_type": self.hf_config.get("model_type"),
                "problem_type": self.problem_type, "scoring": self.scoring, "labels": self.labels,
                "processor_file": self.processor_file, "processor": self.processor,
                "weights_files": self.weights_files, "warnings": list(self.warnings)}

    def weights_location(self, *, progress: bool = False, timeout: float = 30.0) -> Path:
        """The directory holding the weights, fetched into the cache at the model's commit when needed."""
        if not self.weights_files:
            raise WeightsError(f"{self.name} holds no weights ({', '.join(WEIGHTS_FILES)}); a run needs one of them. "
                               f"Its shapes and costs can still be seen without weights")
        if self.ref.repo_id is None:
            return self.directory
        name = self.weights_files[0]
        first = self._fetch(name, progress, timeout)  # the weights file, or the index naming the shards
        for shard in _shards(first) if name.endswith(".index.json") else ():
            self._fetch(shard, progress, timeout)
        return first.parent

    def _fetch(self, name: str, progress: bool, timeout: float) -> Path:
        return fetch_file(self.ref, self.commit or self.ref.revision, name, progress=progress, timeout=timeout)


def _shards(index: Path) -> list[str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{index.name} is not a valid shard index: {exc}") from None
    bad = [s for s in shards if not isinstance(s, str) or "/" in s or s.startswith(".")]
    if bad:
        raise WeightsError(f"{index.name} names shards outside the repository's top folder: {show_value(bad[0])}")
    return shards


# ----------------------------------------------------------------------------------------------- opening


def open_model(name: str | Path) -> HubModel:
    """The model ``name`` refers to, opened (``config.json`` and the processor config read; no weights fetched).

    Raises :class:`ConfigError` for a malformed reference or a config the families cannot build, and
    :class:`WeightsError` for a repository that cannot be fetched (not found, private or gated, no network)."""
    ref = parse_ref(name)
    key = (ref, os.environ.get("HF_ENDPOINT", ""), hf_offline(), str(_cache_dir()))
    if ref.path is not None:  # a directory may change between calls, and reading it takes a millisecond
        return _open.__wrapped__(key)
    return _open(key)


@functools.lru_cache(maxsize=32)
def _open(key: tuple) -> HubModel:
    from .hf_reading import read_model_config, recipe_from_processor

    ref: ModelRef = key[0]
    if ref.path is not None:
        directory, commit = ref.path, None
        files = tuple(sorted(p.name for p in directory.iterdir() if p.is_file()))
        where = str(directory)
    else:
        directory, commit, files = _resolve(ref)
        where = f"{ref.repo_id}@{commit[:7]}"
    hf_config = _read_json(_local(ref, directory, commit, CONFIG_FILE), CONFIG_FILE)
    info = read_model_config(hf_config)
    wanted = PROCESSOR_FILES[1] if info.family.hf.video_processor else PROCESSOR_FILES[0]
    processor_file = next((f for f in (wanted, *PROCESSOR_FILES) if f in files), None)
    processor = (_read_json(_local(ref, directory, commit, processor_file), processor_file)
                 if processor_file else None)
    recipe, warnings = recipe_from_processor(processor, processor_file, family=info.family, config=info.config,
                                             where=where)
    if "num_frames" not in info.family.hf.fields.values():
        warnings.append(f"config.json does not say how many frames the classifier reads: {recipe.num_frames} are "
                        f"read (set num_frames to change it)")
    if not any(f in files for f in WEIGHTS_FILES):
        warnings.append(f"{where} holds no weights file ({', '.join(WEIGHTS_FILES)}): shapes and costs only")
    return HubModel(ref=ref, directory=directory, commit=commit, files=files, hf_config=hf_config,
                    processor=processor, processor_file=processor_file, family=info.family.name,
                    architecture=info.architecture, config=info.config, labels=info.labels,
                    problem_type=info.problem_type, scoring=info.scoring, recipe=recipe, warnings=warnings)


def _read_json(path: Path, name: str) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ConfigError(f"{name} is {size / 1024 ** 2:.0f} MB, more than the {MAX_JSON_BYTES // 1024 ** 2} MB a "
                              f"model's config may take", field=name)
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} is not valid JSON: {str(exc)[:200]}", field=name) from None
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror or exc}", field=name) from None


def _local(ref: ModelRef, directory: Path, commit: str | None, name: str) -> Path:
    """``name`` of the model on this machine: in its directory, or fetched into the cache snapshot."""
    if ref.repo_id is None or (directory / name).is_file():
        return directory / name
    return fetch_file(ref, commit or ref.revision, name)


# ----------------------------------------------------------------------------------------------- the Hub


def _cache_dir() -> Path:
    from .downloads import hf_hub_cache

    return hf_hub_cache()


def _repo_cache(repo_id: str) -> Path:
    return _cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _cached_commit(ref: ModelRef) -> str | None:
    if _COMMIT.match(ref.revision):
        return ref.revision
    refs = _repo_cache(ref.repo_id) / "refs" / ref.revision
    try:
        commit = refs.read_text().strip()
    except OSError:
        return None
    return commit if _COMMIT.match(commit) else None


def _offline_snapshot(ref: ModelRef, reason: str) -> tuple[Path, str, tuple[str, ...]]:
    commit = _cached_commit(ref)
    snapshot = _repo_cache(ref.repo_id) / "snapshots" / (commit or "")
    if commit is None or not (snapshot / CONFIG_FILE).is_file():
        raise WeightsError(f"{reason}, and the Hugging Face cache ({_cache_dir()}) holds no {ref.repo_id} at "
                           f"{ref.revision}. Run once with network to fill the cache, or download the repository's "
                           f"files by hand into a directory and name that directory as the model")
    return snapshot, commit, tuple(sorted(p.name for p in snapshot.iterdir()))


def _resolve(ref: ModelRef) -> tuple[Path, str, tuple[str, ...]]:
    """``(snapshot directory, commit, files)`` of ``ref``: asked of the Hub (the revision resolved to a commit and
    recorded in the cache's refs), or read from the cache offline."""
    if hf_offline():
        return _offline_snapshot(ref, "HF_HUB_OFFLINE is set")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint())
    try:
        info = api.model_info(ref.repo_id, revision=ref.revision, timeout=30)
        commit = info.sha
        files = [s.rfilename for s in info.siblings or ()] or api.list_repo_files(ref.repo_id, revision=commit)
    except Exception as exc:  # noqa: BLE001 (huggingface_hub's and httpx's errors)
        problem = _hub_error(exc, ref)
        if problem is None:  # no network: the cache may hold it
            return _offline_snapshot(ref, f"{_endpoint()} cannot be reached ({type(exc).__name__})")
        raise problem from None
    if not isinstance(commit, str) or not _COMMIT.match(commit):
        raise WeightsError(f"{_endpoint()} did not resolve {ref.repo_id}@{ref.revision} to a commit")
    snapshot = _repo_cache(ref.repo_id) / "snapshots" / commit
    if ref.revision != commit:  # what huggingface_hub records, so that offline runs find this revision
        refs = _repo_cache(ref.repo_id) / "refs" / ref.revision
        refs.parent.mkdir(parents=True, exist_ok=True)
        partial = refs.with_name(refs.name + ".partial")
        partial.write_text(commit)
        os.replace(partial, refs)
    return snapshot, commit, tuple(sorted(f for f in files if isinstance(f, str)))


def _endpoint() -> str:
    from .downloads import hf_endpoint

    return hf_endpoint()


def fetch_file(ref: ModelRef, revision: str, name: str, *, progress: bool = False, timeout: float = 30.0) -> Path:
    """``name`` of the repository at ``revision`` (a commit), from the cache or fetched into it."""
    snapshot = _repo_cache(ref.repo_id) / "snapshots" / revision
    if (snapshot / name).is_file():
        return snapshot / name
    if hf_offline():
        raise WeightsError(f"HF_HUB_OFFLINE is set and the cache holds no {name} of {ref.repo_id} at {revision}; "
                           f"run once with network, or place the file at {snapshot / name}")
    from huggingface_hub import hf_hub_download
    from tqdm.auto import tqdm

    quiet = None if progress else functools.partial(tqdm, disable=True)
    try:
        return Path(hf_hub_download(ref.repo_id, name, revision=revision, cache_dir=_cache_dir(),
                                    endpoint=_endpoint(), etag_timeout=timeout, tqdm_class=quiet))
    except Exception as exc:  # noqa: BLE001
        problem = _hub_error(exc, ref, name)
        if problem is None:
            problem = WeightsError(f"the transfer of {name} from {ref.repo_id} failed ({type(exc).__name__}: "
                                   f"{str(exc)[:200]}); run again to resume, or place the file at {snapshot / name}")
        raise problem from None


def _hub_error(exc: BaseException, ref: ModelRef, name: str | None = None) -> WeightsError | None:
    """Our message for what ``huggingface_hub`` raised; ``None`` for a network failure (no answer at all)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    token = "HF_TOKEN is set but does not open it" if os.environ.get("HF_TOKEN") else "set HF_TOKEN to a token that can read it"
    if isinstance(exc, GatedRepoError):
        return WeightsError(f"{ref.repo_id} is gated: accept its conditions on its Hub page with your account, then "
                            f"{token}")
    if isinstance(exc, RepositoryNotFoundError):
        return WeightsError(f"{ref.repo_id} was not found on {_endpoint()}: check the name, or, if it is private, "
                            f"{token}")
    if isinstance(exc, RevisionNotFoundError):
        return WeightsError(f"{ref.repo_id} has no revision {ref.revision!r} (a branch, tag or commit)")
    if isinstance(exc, EntryNotFoundError):
        return WeightsError(f"{ref.repo_id} has no file {name!r} at {ref.revision}")
    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status in (401, 403):
            return WeightsError(f"{_endpoint()} refused access to {ref.repo_id} ({status}): {token}")
        if status is not None:
            return WeightsError(f"{_endpoint()} answered {status} for {ref.repo_id}"
                                + (f" ({name})" if name else "") + "; try again later")
    if isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith(("httpx", "httpcore", "requests")):
        return None
    if isinstance(exc, HfHubHTTPError):
        return None
    return WeightsError(f"{ref.repo_id}: {type(exc).__name__}: {str(exc)[:200]}")


def open_preset(name: Any) -> Preset | None:
    """The :class:`~videoattn_core.registry.Preset` of a model named by where it lives, or ``None`` for a name of
    another kind (a preset name, which the registry answers)."""
    if not looks_like_ref(name):
        return None
    model = open_model(name)
    return Preset(model.name, model.config, model.description(), origin=model)


register_resolver(open_preset)
