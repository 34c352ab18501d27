"""Evaluate a checkpoint on a labelled dataset with the published protocol (``vac.evaluate``, the ``evaluate``
command): every clip read with the weights' recipe and test views, the views' scores averaged, top-1, top-5, mean
class accuracy, per-class accuracy and the confusion matrix; resumable (one JSON line per clip), and split over the
ranks of a torchrun job.

Submodules: :mod:`.annotations` (dataset formats, label mapping), :mod:`.runner` (the loop, the DataLoader,
torchrun), :mod:`.results` (the results file, resuming, merging shards), :mod:`.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..run import runtime, weights_source
from ..errors import ConfigError
from . import results
from .annotations import FORMATS, MATCHES, Dataset, Sample, map_labels, normalise, read_dataset
from .metrics import compute_metrics
from .runner import (Throughput, gather_rows, gather_throughput, init_distributed, ranks_from_env, release_shard,
                     run_shard, share_done)

__all__ = ["evaluate", "Evaluation", "read_dataset", "map_labels", "normalise", "compute_metrics", "FORMATS",
           "MATCHES", "Dataset", "Sample"]


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate`: the header of the results file, the rows of the dataset's clips (in its
    order), the metrics, and what this run did (``throughput``; on ranks other than 0 of a torchrun job, only
    ``throughput`` and ``rank`` are filled)."""

    header: dict[str, Any]
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    throughput: Throughput
    skipped: int = 0
    rank: int = 0
    warnings: list[str] = field(default_factory=list)


def _read_label_file(path: str | Path) -> list[str]:
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--labels {path} cannot be read: {exc}", field="labels") from None
    return names


def _model_labels(plan: runtime.RunPlan, labels: str | Path | None) -> list[str]:
    """The model's class names, known before it is loaded: ``labels`` (a file, one name a line), else what the run
    will use (for a catalog entry with a Hugging Face config, its dataset's label list)."""
    n = int(getattr(plan.config, "num_classes", 0) or 0)
    if labels is not None:
        names = _read_label_file(labels)
        if len(names) != n:
            raise ConfigError(f"--labels {labels} names {len(names)} classes; the model has {n}", field="labels")
        return names
    entry = plan.weights.entry
    if entry is not None and entry.hf_repo:
        from ..weights.lookup import load_labels

        names = load_labels(entry.dataset)
        if len(names) == n:
            return names
    return weights_source.resolve_labels(plan.config, plan.preset, plan.weights, plan.hf_config)[0]


def _check_mapping(dataset: Dataset, labels: list[str], match: str, skip_unmapped: bool):
    mapping, unmapped, how = map_labels(dataset, labels, match)
    if unmapped and not skip_unmapped:
        shown = ", ".join(repr(u) for u in unmapped[:20]) + (f" and {len(unmapped) - 20} more" if len(unmapped) > 20
                                                              else "")
        raise ConfigError(f"{len(unmapped)} dataset label(s) map to no class of the model ({how}): {shown}; name "
                          f"the model's classes with --labels FILE, choose --match name|index, or pass "
                          f"--skip-unmapped to leave those clips out", field="data")
    return mapping, unmapped, how


def evaluate(model: str, data: str | Path, root: str | Path | None = None, *, weights: str | None = None,
             checkpoint: str | Path | None = None, seed: int = 0, overrides: dict[str, Any] | None = None,
             views: str | tuple[int, int] | None = "protocol", out: str | Path | None = None, batch_size: int = 1,
             workers: int = 0, limit: int | None = None, device: str | None = "auto", dtype: str = "float32",
             format: str | None = None, labels: str | Path | None = None, match: str = "auto",
             skip_unmapped: bool = False, compile: bool = False, sampling_rate: int | None = None,
             progress: bool | Callable[[int, int], None] = False, limits: Any = None) -> Evaluation:
    """Classify every clip of a labelled dataset (``data``: annotation file or class-folder tree; clips under
    ``root``) with ``model`` read by its weights' recipe and ``views`` (``"protocol"``: the paper's test views,
    ``"single"``, or ``"CxK"``), and compute the papers' metrics.

    With ``out`` (a ``.jsonl`` file) each clip's row is written as it is made and a rerun skips the clips already
    there; under torchrun (``RANK``/``WORLD_SIZE`` set) each rank classifies its share and rank 0 merges and
    reports. ``labels`` names the model's classes (a file, one name a line); ``match`` is ``"auto"`` (names when
    model and dataset have them, else indices), ``"name"`` or ``"index"``. Labels that map to no class raise a
    :class:`ConfigError` listing them before anything runs, unless ``skip_unmapped``. ``progress``: a bar on
    stderr (``True``), or a function told ``(clips done, clips)`` as the run goes (the app's progress bar)."""
    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name}={value!r} is not allowed: a whole number ≥ {low}", field=name)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r} is not allowed: a whole number ≥ 1", field="limit")
    ranks = ranks_from_env()
    if ranks.distributed and out is None:
        raise ConfigError("under torchrun the ranks write their rows to shards of --out: give --out FILE.jsonl",
                          field="out")
    dataset = read_dataset(data, root, format)
    samples = dataset.samples[:limit] if limit else dataset.samples
    plan_device = init_distributed(ranks, device) if ranks.distributed else device
    plan = runtime.plan_run(model, None, weights=weights, checkpoint=checkpoint, seed=seed, overrides=overrides,
                            device=plan_device, dtype=dtype, views=views, estimate=False, compile=compile,
                            sampling_rate=sampling_rate)
    names = _model_labels(plan, labels)
    mapping, unmapped, how = _check_mapping(dataset, names, match, skip_unmapped)  # refused before any download

    run = runtime.load_model(plan, progress=progress is True and ranks.rank == 0)
    if labels is not None:
        run.labels = names
    elif run.labels != names:  # the checkpoint named its classes otherwise than its catalog entry's dataset
        names = run.labels
        mapping, unmapped, how = _check_mapping(dataset, names, match, skip_unmapped)
    kept = [s for s in samples if s.label in mapping]
    header = {"model": model, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in (overrides or {}).items()},
              "weights": plan.weights.name, "seed": plan.weights.seed if plan.weights.random else None,
              "views": list(plan.views), "data": str(Path(dataset.data).resolve()), "format": dataset.format,
              "root": str(Path(dataset.root).resolve()), "match": how, "clips": len(kept),
              "recipe": plan.recipe.to_dict(), "labels": names}
    done = share_done(results.done_paths(out, header) if out is not None else set(), ranks)
    items = [(i, s) for i, s in enumerate(kept) if i % ranks.world == ranks.rank and s.path not in done]
    handle = None
    if out is not None:
        handle = results.open_rows(results.shard_path(out, ranks.rank) if ranks.distributed else out, header)
    try:
        fresh, stats = run_shard(plan, run, items, mapping, handle, batch_size=batch_size, workers=workers,
                                 limits=limits, progress=progress if ranks.rank == 0 else False)
    finally:
        if handle is not None:
            handle.close()
    stats = gather_throughput(stats, ranks, plan.device)
    sent = gather_rows(out, ranks)  # a shard on another machine reaches rank 0 without a shared filesystem
    skipped = len(samples) - len(kept)
    warnings = [f"{skipped} clip(s) whose label maps to no class left out: {', '.join(map(repr, unmapped))}"
                ] if skipped else []
    warnings += run.warnings + ([runtime.RANDOM_WARNING] if run.random_init else [])
    if ranks.rank != 0:
        release_shard(out, ranks)
        return Evaluation(header, [], {}, stats, skipped, ranks.rank, warnings)
    try:
        rows = results.merge(out, header, [s.path for s in kept], sent) if out is not None else fresh
    finally:  # the other ranks wait for the merge at this barrier, also when it fails
        release_shard(out, ranks)
    return Evaluation(header, rows, compute_metrics(rows, names), stats, skipped, ranks.rank, warnings)


def evaluate_into(model: str, weights: str | None, sets: str, data_path: str, root: str, limit: int,
                  folder: Path, progress: Callable[[int, int], None] | None = None) -> str:
    """A small evaluation the app starts: ``data_path`` and ``root`` must lie under the data folders
    (:func:`results.server_clip`), ``sets`` is ``--set``'s ``FIELD=VALUE`` text, one view per clip, the rows
    written to a new results file in ``folder``; returns its name there."""
    from ..config import parse_assignments
    from ..registry import get_preset

    data = results.server_clip(data_path, folder=True)
    clips = results.server_clip(root, folder=True) if root.strip() else None
    overrides = parse_assignments(type(get_preset(model).config), sets.split(), flag="--set")
    name = f"app-{data.stem}-{len(results.list_results(folder)) + 1}.jsonl"
    evaluate(model, data, clips, weights=weights, overrides=overrides, views="single", limit=limit,
             out=folder / name, workers=0, progress=progress)
    return name


def finish() -> None:
    """Leave the torchrun job, if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

