"""Where a run's weights come from (:class:`WeightsSource`: a catalog entry, a checkpoint, a model's own repository or
random initialisation from a seed) and the names of its classes (:func:`resolve_labels`), for
:func:`videoattn_core.run.runtime.plan_run`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from ..weights.catalog.records import DATASET_CLASSES, WeightsEntry
from ..weights.downloads import cached_path, target_path
from ..weights.lookup import default_entry, get_entry, labels_from_hf_config, load_labels

@dataclass(frozen=True)
class WeightsSource:
    """Where a run's weights come from: ``kind`` is "random", "entry", "checkpoint" or "repository" (the weights of
    a model named by where it lives, :class:`~videoattn_core.weights.hub.HubModel`)."""

    kind: str
    name: str
    entry: WeightsEntry | None = None
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    seed: int = 0
    origin: Any = None
    #: SHA-256 of uploaded bytes (hex), kept when the bytes are let go (:meth:`without_data`)
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.data is not None and self.digest is None:
            object.__setattr__(self, "digest", hashlib.sha256(self.data).hexdigest())

    @property
    def random(self) -> bool:
        return self.kind == "random"

    @functools.cached_property
    def identity(self) -> tuple[Any, ...]:
        """What tells these weights apart from any others (hashable): the entry, the file, the digest of uploaded
        bytes, the repository's commit, or the seed."""
        origin = (str(self.origin.directory), self.origin.commit) if self.origin is not None else None
        return (self.kind, self.name, str(self.path) if self.path is not None else None, self.digest, self.seed,
                origin)

    @property
    def needs_data(self) -> bool:
        """Uploaded bytes this source no longer holds (:meth:`without_data`): loading takes them again."""
        return self.digest is not None and self.data is None

    def without_data(self) -> WeightsSource:
        """The same weights without the uploaded bytes (their digest kept): what a long-lived cache should hold."""
        return dataclasses.replace(self, data=None) if self.data is not None else self

    def with_data(self, data: bytes) -> WeightsSource:
        """These weights with their uploaded bytes again; ``data`` must be the bytes they were made from."""
        if self.digest is None:
            raise ConfigError(f"{self.name} were not made from uploaded bytes: they take none", field="checkpoint")
        data = bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.digest:
            raise ConfigError(f"these bytes (SHA-256 {digest[:12]}…) are not the uploaded checkpoint the run was "
                              f"planned with (SHA-256 {self.digest[:12]}…)", field="checkpoint")
        return dataclasses.replace(self, data=data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.kind == "random":
            out["seed"] = self.seed
        if self.entry is not None:
            e = self.entry
            cached = cached_path(e)
            out.update(source=e.source, url=e.url, hf_repo=e.hf_repo, layout=e.layout, page=e.page,
                       cached=cached is not None, path=str(cached or target_path(e)),
                       direct_download=e.direct, verification=e.verification, sha256=e.sha256,
                       hash_prefix=e.hash_prefix, size_mb=e.size_mb, dataset=e.dataset, metrics=e.metrics,
                       metrics_protocol=e.metrics_protocol)
        elif self.origin is not None:
            o = self.origin
            out.update(repo_id=o.ref.repo_id, revision=o.ref.revision if o.ref.repo_id else None, commit=o.commit,
                       files=o.weights_files, path=str(o.directory),
                       cached=all((o.directory / f).is_file() for f in o.weights_files))
        elif self.path is not None:
            out["path"] = str(self.path)
        return out


def weights_source(*, weights: str | WeightsEntry | None = None, checkpoint: str | Path | bytes | None = None,
                   seed: int = 0, origin: Any = None) -> WeightsSource:
    """Where the weights come from: a catalog entry, a checkpoint, the repository ``origin`` of a model named by
    where it lives (when neither is given), or random initialisation from ``seed``."""
    if weights is not None and checkpoint is not None:
        raise ConfigError("give either weights (a catalog entry) or a checkpoint file, not both", field="weights")
    if origin is not None and weights is None and checkpoint is None:
        return WeightsSource("repository", f"{origin.name} ({', '.join(origin.weights_files) or 'no weights file'})",
                             origin=origin)
    if weights is not None:
        entry = get_entry(weights)
        return WeightsSource("entry", entry.name, entry=entry)
    if isinstance(checkpoint, (bytes, bytearray)):
        return WeightsSource("checkpoint", "uploaded bytes", data=bytes(checkpoint))
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return WeightsSource("checkpoint", str(path), path=path)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not allowed: seed must be an integer ≥ 0", field="seed")
    return WeightsSource("random", f"random initialisation (seed {seed})", seed=seed)


def resolve_labels(config: ModelConfig, preset: str, source: WeightsSource,
                   hf_config: dict[str, Any] | None) -> tuple[list[str], str, list[str]]:
    """``(labels, where they come from, warnings)``: the checkpoint's ``id2label`` when it has as many names as
    classes, else the label list of the weights' dataset (for random weights: of the preset's default entry; for a
    bare checkpoint: a dataset with as many classes), else class indices."""
    n = int(getattr(config, "num_classes", 0) or 0)
    labels = labels_from_hf_config(hf_config)
    if labels is not None and len(labels) == n:
        return labels, "checkpoint config.json (id2label)", []
    assumed = ""
    if source.entry is not None:
        dataset = source.entry.dataset
    elif source.random:
        fallback = default_entry(preset)
        dataset = fallback.dataset if fallback is not None else None
    else:
        dataset = next((d for d, k in DATASET_CLASSES.items() if k == n), None)
        assumed = f", assumed from its {n} classes"
    if dataset is not None:
        names = load_labels(dataset)
        if len(names) == n:
            return names, f"assets label list ({dataset}{assumed})", []
    warnings = [] if source.random else [f"the checkpoint carries no label names for its {n} classes: showing "
                                         f"class indices"]
    return [f"class {i}" for i in range(n)], "class indices", warnings
