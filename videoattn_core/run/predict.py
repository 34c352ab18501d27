"""Predictions: run a preset on a clip with published weights, a checkpoint file, or random initialisation.

``python -m videoattn_core predict MODEL (--clip FILE | --clips DIR_OR_GLOB) [--weights ENTRY | --checkpoint FILE]
[--views single|protocol|CxK] [--timeline SECONDS] [--dry-run] [--top-k K] [--device auto|cpu|cuda] [--compile] [--json]
[--out FILE] [--set FIELD=VALUE ...]``. Every way in goes through :mod:`videoattn_core.run.runtime`: the clip is read
with the recipe of the weights it is classified with, labels come from the checkpoint when it carries them (a
Hugging Face ``config.json``), else from the label list of the weights' dataset in ``assets/``; without weights the
model is randomly initialised from a seed and the output says loudly that its predictions mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ..clips.probe import Limits
from ..config import jsonable
from ..errors import ConfigError, VideoAttnError
from .devices import resolve_dtype
from .runtime import RANDOM_WARNING, classify, load_inputs, load_model, plan_run, top_predictions
from ..units import class_name

__all__ = ["Prediction", "predict", "top_predictions", "RANDOM_WARNING"]


@dataclass
class Prediction:
    """The outcome of :func:`predict`; ``predictions`` are ``{label, index, probability}`` dicts, best first, and
    ``probabilities`` the whole softmax vector (averaged over the views). A multi-label classifier
    (``scoring="sigmoid"``) scores each class on its own: its ``probabilities`` are independent, not a
    distribution."""

    model: str
    predictions: list[dict[str, Any]]
    weights: str | None
    random_init: bool
    labels_from: str
    device: str
    clip: dict[str, Any]
    recipe: dict[str, Any]
    config_overrides: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    views: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    scoring: str = "softmax"
    repository: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weights": self.weights, "random_init": self.random_init, "seed": self.seed,
                "warning": RANDOM_WARNING if self.random_init else None, "labels_from": self.labels_from,
                "device": self.device, "config_overrides": {k: jsonable(v) for k, v in self.config_overrides.items()},
                "clip": self.clip, "recipe": self.recipe, "views": self.views, "predictions": self.predictions,
                "scoring": self.scoring, "probabilities": self.probabilities, "warnings": self.warnings,
                "repository": self.repository}


def predict(model: str, clip: str | Path | bytes, *, weights: str | None = None,
            checkpoint: str | Path | bytes | None = None, top_k: int = 5, device: str | None = "auto",
            overrides: dict[str, Any] | None = None, limits: Limits | None = None, seed: int = 0,
            views: str | tuple[int, int] | None = None, dtype: str = "float32", compile: bool = False,
            sampling_rate: int | None = None) -> Prediction:
    """Classify ``clip`` with preset ``model``, or with a Hugging Face model named by where it lives
    (``hf:ORG/NAME[@REVISION]`` or its directory: its own weights, labels, processor and scoring; frames
    ``sampling_rate`` apart from the first, as transformers' pipeline reads them).

    ``weights`` names a catalog entry (fetched with :func:`~videoattn_core.weights.lookup.get_weights`; the clip is read
    with that entry's recipe); ``checkpoint`` is a file, a Hugging Face directory or bytes; with neither the model
    is randomly initialised from ``seed`` (and ``random_init`` says so). ``overrides`` set config fields
    (``{"num_classes": 10}``) on top of those the weights imply; ``views`` is ``"single"`` (default),
    ``"protocol"`` (the paper's clips × crops) or ``"CxK"``. ``compile`` runs the forward through
    ``torch.compile`` (the first forward compiles; on the CPU a C++ compiler is needed). Every problem a user can
    cause raises a :class:`~videoattn_core.errors.VideoAttnError`.
    """
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is not allowed: top_k must be an integer ≥ 1", field="top_k")
    plan = plan_run(model, clip, weights=weights, checkpoint=checkpoint, seed=seed, overrides=overrides,
                    device=device, dtype=dtype, views=views, limits=limits, estimate=False, compile=compile,
                    sampling_rate=sampling_rate)
    # inputs are checked before anything is downloaded or built: a bad clip or file fails fast
    inputs = load_inputs(plan, clip, limits=limits)
    run = load_model(plan, progress=True)
    probs = classify(run.model, inputs.tensor, device=plan.device, dtype=resolve_dtype(dtype), scoring=run.scoring)
    return prediction_of(plan, run, inputs, probs, top_k)


def prediction_of(plan: Any, run: Any, inputs: Any, probs: torch.Tensor, top_k: int) -> Prediction:
    """The :class:`Prediction` of a run (shared by :func:`predict`, batches and the app)."""
    clip = inputs.clip
    clip_info = clip.info.to_dict()
    clip_info.update(sampled_indices=list(clip.frame_indices), padded_frames=clip.padded_frames, notes=clip.notes)
    clips, crops = plan.views
    return Prediction(model=plan.preset, predictions=top_predictions(probs, run.labels, top_k),
                      weights=None if plan.weights.random else plan.weights.name, random_init=run.random_init,
                      labels_from=run.labels_from, device=str(plan.device), clip=clip_info,
                      recipe=inputs.recipe.to_dict(), config_overrides=plan.overrides,
                      warnings=run.warnings + _compile_notes(run.model) + list(clip.notes),
                      probabilities=probs.tolist(),
                      views={"clips": clips, "crops": crops, "forwards": clips * crops},
                      seed=plan.weights.seed if plan.weights.random else None, scoring=plan.scoring,
                      repository=plan.origin.to_dict() if plan.origin is not None else None)


def _compile_notes(model: Any) -> list[str]:
    reason = getattr(model, "fallback_reason", None)
    return [f"torch.compile failed ({reason}); the eager forward was used"] if reason else []


# ----------------------------------------------------------------------------------------------- many clips


def predict_many(model: str, clips: list[str | Path], *, weights: str | None = None,
                 checkpoint: str | Path | None = None, top_k: int = 5, device: str | None = "auto",
                 overrides: dict[str, Any] | None = None, seed: int = 0, views: str | tuple[int, int] | None = None,
                 dtype: str = "float32", limits: Limits | None = None, compile: bool = False,
                 sampling_rate: int | None = None) -> Iterator[dict[str, Any]]:
    """One row per clip (the model built once): ``{"clip", "ok", "predictions" | "error", ...}``. A clip that
    cannot be read gives an error row and the batch goes on."""
    plan = plan_run(model, None, weights=weights, checkpoint=checkpoint, seed=seed, overrides=overrides,
                    device=device, dtype=dtype, views=views, estimate=False, compile=compile,
                    sampling_rate=sampling_rate)
    run = load_model(plan, progress=True)
    for path in clips:
        try:
            inputs = load_inputs(plan, path, limits=limits)
            probs = classify(run.model, inputs.tensor, device=plan.device, dtype=resolve_dtype(dtype),
                             scoring=run.scoring)
        except VideoAttnError as exc:
            yield {"clip": str(path), "ok": False, "error": str(exc)}
            continue
        yield {"clip": str(path), "ok": True, "predictions": top_predictions(probs, run.labels, top_k),
               "sampled_indices": list(inputs.clip.frame_indices), "labels_from": run.labels_from,
               "scoring": run.scoring}


def timeline_windows(info: Any, recipe: Any, stride_s: float) -> list[tuple[int, list[int]]]:
    """``(start frame, frame indices)`` of each window of a timeline over the whole clip.

    A window spans what the recipe reads for one clip (``num_frames × sampling_rate`` frames at ``target_fps``,
    in this clip's frames); recipes that sample the whole clip uniformly use windows of ``stride_s`` seconds.
    Windows start every ``stride_s`` seconds while they fit in the clip (at least one window)."""
    from ..clips.sampling import clip_indices

    if not stride_s or stride_s <= 0:
        raise ConfigError(f"timeline stride {stride_s!r} is not allowed: the stride must be a number of seconds > 0",
                          field="timeline")
    fps = info.fps or recipe.target_fps
    if recipe.sampling_rate is None:
        span = max(recipe.num_frames, int(round(stride_s * fps)))
    else:
        span = max(1, int(-(-recipe.sampling_rate * recipe.num_frames * fps // recipe.target_fps)))
    step = max(1, int(round(stride_s * fps)))
    starts = list(range(0, max(info.num_frames - span, 0) + 1, step))
    local = clip_indices(span, recipe.num_frames, recipe.sampling_rate, fps=info.fps, target_fps=recipe.target_fps,
                         rule=recipe.clip_rule)
    return [(s, [min(s + i, info.num_frames - 1) for i in local]) for s in starts]


def timeline(model: str, clip: str | Path | bytes, *, stride_s: float, weights: str | None = None,
             checkpoint: str | Path | bytes | None = None, top_k: int = 5, device: str | None = "auto",
             overrides: dict[str, Any] | None = None, seed: int = 0, dtype: str = "float32",
             limits: Limits | None = None, progress: Any = None, compile: bool = False,
             sampling_rate: int | None = None) -> dict[str, Any]:
    """Predictions over time: the top-k of each window of :func:`timeline_windows` (one centre crop each).
    Each window is decoded by seeking to it, so a long clip costs windows × (seek + forward)."""
    plan = plan_run(model, None, weights=weights, checkpoint=checkpoint, seed=seed, overrides=overrides,
                    device=device, dtype=dtype, estimate=False, compile=compile, sampling_rate=sampling_rate)
    return timeline_of(plan, load_model(plan, progress=progress is not None), clip, stride_s=stride_s,
                       top_k=top_k, limits=limits, progress=progress)


def timeline_of(plan: Any, run: Any, clip: str | Path | bytes, *, stride_s: float, top_k: int = 5,
                limits: Limits | None = None, progress: Any = None, probabilities: bool = False) -> dict[str, Any]:
    """:func:`timeline` for a planned run whose model is loaded (the app keeps its models); ``probabilities`` keeps
    each window's whole softmax vector."""
    from ..clips.decode import read_frames
    from ..clips.preprocessing import preprocess
    from ..clips.probe import probe_clip

    info = probe_clip(clip, limits)
    windows = timeline_windows(info, plan.recipe, stride_s)
    r, fps = plan.recipe, info.fps or plan.recipe.target_fps
    rows = []
    for n, (start, indices) in enumerate(windows):
        frames = read_frames(clip, indices, limits=limits)
        x = preprocess(frames.frames, mean=r.mean, std=r.std, rescale=r.rescale, offset=r.offset,
                       **r.spatial()).unsqueeze(0)
        probs = classify(run.model, x, device=plan.device, dtype=resolve_dtype(plan.dtype), scoring=run.scoring)
        row = {"window": n, "start_s": start / fps, "end_s": (indices[-1] + 1) / fps,
               "frame_indices": list(frames.frame_indices), "predictions": top_predictions(probs, run.labels, top_k)}
        if probabilities:
            row["probabilities"] = probs.tolist()
        rows.append(row)
        if progress is not None:
            progress(n + 1, len(windows))
    return {"model": plan.preset, "weights": None if plan.weights.random else plan.weights.name,
            "random_init": plan.weights.random, "labels_from": run.labels_from, "scoring": run.scoring,
            "stride_s": stride_s,
            "clip": info.to_dict(), "recipe": r.to_dict(), "windows": rows}


def timeline_series(result: dict[str, Any], labels: list[str], max_classes: int = 6) -> dict[str, list[float]]:
    """For a chart: the probability over the windows of each class that is some window's top-1 (the most frequent
    first, at most ``max_classes``); needs :func:`timeline_of` with ``probabilities=True``."""
    counts: dict[int, int] = {}
    for w in result["windows"]:
        best = w["predictions"][0]["index"]
        counts[best] = counts.get(best, 0) + 1
    chosen = sorted(counts, key=lambda i: -counts[i])[:max_classes]
    return {class_name(labels, i): [w["probabilities"][i] for w in result["windows"]]
            for i in chosen}
