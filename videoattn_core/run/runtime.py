"""The run pipeline: one path from what a user asks for to a prepared, runnable prediction.

``vac.predict``, the ``predict`` command and every page of the app go through these functions, so the same clip
with the same weights (random initialisation included, same seed) gives the same numbers everywhere:

1. :func:`plan_run` — (preset, overrides, weights entry | checkpoint | random with a seed, clip, device, dtype,
   views) → a :class:`RunPlan`: the config, where the weights come from (cache path, URL, verification), the
   recipe the weights were evaluated with, the exact frame indices of every view, where the labels will come from,
   the cost and the memory estimate. Nothing is downloaded, built or decoded (the clip is only probed).
2. :func:`load_model` — the model built (seeded), its weights loaded, moved to the device: a :class:`RunModel`
   with its labels.
3. :func:`load_inputs` — the clip decoded and preprocessed as the recipe says: one tensor row per view.
4. :func:`classify` — the forward of every view and their softmax scores averaged, as the papers' multi-view
   tests do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..attention.capture import model_lock
from ..clips.preprocessing import LoadedClip, read_views
from ..clips.probe import ClipInfo, Limits, probe_clip
from ..clips.sampling import clip_indices, parse_views
from ..config import ModelConfig, jsonable
from ..errors import CheckpointError, ConfigError
from ..registry import build_model, get_config, get_preset
from ..weights import hf_reading
from ..weights.checkpoints import load_checkpoint, read_checkpoint
from ..weights.downloads import get_weights
from ..weights.catalog.records import Recipe, WeightsEntry
from ..weights.lookup import entry_overrides, read_hf_config, recipe_for
from . import devices
from .devices import DTYPES, resolve_device, resolve_dtype
from .weights_source import WeightsSource, resolve_labels, weights_source
from ..units import class_name

RANDOM_WARNING = ("WARNING: no weights were given, so the model is randomly initialised: these predictions mean "
                  "nothing. Pass --weights ENTRY (see the catalog) or --checkpoint FILE.")
_BUILD_LOCK = threading.Lock()  # random initialisation draws from the global RNG: one build at a time


# ----------------------------------------------------------------------------------------------- plan


@dataclass(eq=False)
class RunPlan:
    """Everything a run will do, decided before anything is downloaded, built or decoded. A plan is made once and
    then only read; it is hashable (by :attr:`key`), so that it can key the caches of everything computed from it."""

    preset: str
    config: ModelConfig
    overrides: dict[str, Any]
    weights: WeightsSource
    recipe: Recipe
    views: tuple[int, int]
    device: torch.device
    dtype: str
    clip: ClipInfo | None = None
    frame_indices: list[list[int]] = field(default_factory=list)
    labels_from: str = ""
    hf_config: dict[str, Any] | None = None
    macs: int | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    compile: bool = False
    scoring: str = "softmax"
    origin: Any = None  # hub.HubModel of a model named by where it lives
    clip_id: str | None = None  # the clip's file, or the digest of its bytes

    @property
    def num_views(self) -> int:
        return self.views[0] * self.views[1]

    @property
    def model_key(self) -> tuple[Any, ...]:
        """What the loaded model depends on: plans with equal model keys load the same model."""
        return (self.preset, self.config, self.weights.identity, str(self.device), self.dtype, self.compile)

    @property
    def key(self) -> tuple[Any, ...]:
        """What the run computes from: the model, its recipe and views, the clip and the frames read from it."""
        return (*self.model_key, self.recipe, self.views, self.clip_id,
                tuple(tuple(frames) for frames in self.frame_indices))

    def detached(self) -> RunPlan:
        """This plan without an uploaded checkpoint's bytes (their digest kept, so its keys are the same): what a
        cache of plans holds, so that it does not keep uploads alive; :func:`load_model` then takes the bytes
        again (``checkpoint=``)."""
        if self.weights.data is None:
            return self
        return dataclasses.replace(self, weights=self.weights.without_data())

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunPlan) and self.key == other.key

    def to_dict(self) -> dict[str, Any]:
        clips, crops = self.views
        return {
            "model": self.preset, "config_overrides": {k: jsonable(v) for k, v in self.overrides.items()},
            "weights": self.weights.to_dict(), "recipe": self.recipe.to_dict(),
            "views": {"clips": clips, "crops": crops, "forwards": self.num_views},
            "clip": self.clip.to_dict() if self.clip is not None else None,
            "frame_indices": self.frame_indices, "labels_from": self.labels_from, "device": str(self.device),
            "dtype": self.dtype, "compile": self.compile, "scoring": _SCORING_TEXT[self.scoring],
            "repository": self.origin.to_dict() if self.origin is not None else None, "macs_per_view": self.macs,
            "macs_total": self.macs * self.num_views if self.macs is not None else None,
            "memory": self.memory, "warnings": self.warnings,
        }


_SCORING_TEXT = {"softmax": "softmax (one distribution over the classes)",
                 "sigmoid": "sigmoid (multi-label: independent scores per class)"}


def plan_run(model: str, clip: str | Path | bytes | None = None, *, weights: str | WeightsEntry | None = None,
             checkpoint: str | Path | bytes | None = None, seed: int = 0, overrides: dict[str, Any] | None = None,
             device: str | None = "auto", dtype: str = "float32", views: str | tuple[int, int] | None = None,
             limits: Limits | None = None, estimate: bool = True, compile: bool = False,
             sampling_rate: int | None = None, summarize: Callable[[ModelConfig], Any] | None = None) -> RunPlan:
    """Decide a run (see the module's docstring); raises a :class:`~videoattn_core.errors.VideoAttnError` for
    anything a user got wrong (unknown preset or entry, weights of another preset, bad clip, bad device, compile
    without a C++ compiler on the CPU). ``compile`` has :func:`load_model` compile the model's forward
    (:mod:`videoattn_core.run.compiled`).

    ``model`` is a preset, or a model named by where it lives (``hf:ORG/NAME[@REVISION]``, a directory with a
    Hugging Face ``config.json``): then its own weights, labels, scoring and processor are used, and its frames are
    picked as transformers' video-classification pipeline picks them, ``sampling_rate`` (default 1) apart.

    With ``estimate``, the plan carries the forward's MACs and memory, from ``summarize(config)`` (default:
    :func:`videoattn_core.inspection.summarize`; the app passes its cached summaries)."""
    preset = get_preset(model)
    model = preset.name
    if not type(preset.config).has_head:
        raise ConfigError(f"{model} has no classification head, so it makes no predictions; choose a classifier "
                          f"preset", field="model")
    dev = resolve_device(device)
    resolve_dtype(dtype)
    origin = preset.origin
    source = weights_source(weights=weights, checkpoint=checkpoint, seed=seed, origin=origin)
    entry = source.entry
    if entry is not None and entry.preset != model:
        raise ConfigError(f"weights {entry.name} are for {entry.preset}, not {model}; run predict {entry.preset} "
                          f"--weights {entry.name}", field="weights")
    implied: dict[str, Any] = entry_overrides(entry, preset.config) if entry is not None else {}
    hf_config = read_hf_config(source.path) if source.path is not None else None
    implied.update(hf_reading.config_overrides(preset.config, hf_config))
    implied.update(overrides or {})
    config = get_config(preset.config, **implied)
    if origin is not None and hf_config is None:
        hf_config = origin.hf_config

    recipe = recipe_for(preset, config=config, entry=entry, sampling_rate=sampling_rate)
    if compile and dev.type == "cpu":
        from .compiled import cpp_compiler

        if cpp_compiler() is None:  # refused before anything is downloaded or built
            raise ConfigError("--compile needs a C++ compiler on the CPU (torch.compile writes C++ kernels), and "
                              "none was found (g++, c++, clang++ or $CXX); install one (apt-get install g++) or "
                              "run without --compile", field="compile")
    plan = RunPlan(preset=model, config=config, overrides=config.diff(preset.config), weights=source, recipe=recipe,
                   views=parse_views(views, recipe), device=dev, dtype=dtype, hf_config=hf_config,
                   compile=bool(compile), scoring=hf_reading.scoring_of(hf_config), origin=origin)
    if origin is not None:
        plan.warnings.extend(origin.warnings)
    elif source.path is not None and source.path.is_dir() and any((source.path / f).is_file() for f in
                                                                   ("preprocessor_config.json",
                                                                    "video_preprocessor_config.json")):
        plan.warnings.append(f"{source.path} carries its own processor config, which a checkpoint does not use: clips "
                             f"are read with the {model} recipe. Name the directory as the model to read them as "
                             f"transformers does")
    if entry is not None and entry.hf_repo:
        plan.labels_from = "checkpoint config.json (id2label), else the " + entry.dataset + " label list"
    else:
        _, plan.labels_from, _ = resolve_labels(config, model, source, hf_config)
    if source.random:
        plan.warnings.append(RANDOM_WARNING)
    if clip is not None:
        plan.clip = probe_clip(clip, limits)
        plan.clip_id = clip_identity(clip)
        plan.frame_indices = [clip_indices(plan.clip.num_frames, recipe.num_frames, recipe.sampling_rate,
                                           fps=plan.clip.fps, target_fps=recipe.target_fps, rule=recipe.clip_rule,
                                           clip=c, clips=plan.views[0]) for c in range(plan.views[0])]
    if estimate:
        from ..cost.memory import memory_plan

        if summarize is None:
            from ..inspection import summarize
        summary = summarize(config)
        plan.macs = summary.macs
        plan.memory = memory_plan(summary, dev, DTYPES[dtype].itemsize)
    return plan


def clip_identity(clip: str | Path | bytes) -> str:
    """What tells a clip apart: its resolved path, size and modification time, or the digest of its bytes."""
    if isinstance(clip, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(clip).hexdigest()
    path = Path(clip).resolve()
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


# ----------------------------------------------------------------------------------------------- model and inputs


@dataclass
class RunModel:
    """A model ready to run, with the labels of its classes."""

    model: torch.nn.Module
    labels: list[str]
    labels_from: str
    random_init: bool
    report: str
    warnings: list[str] = field(default_factory=list)
    scoring: str = "softmax"


def build_seeded(config: ModelConfig, seed: int = 0) -> torch.nn.Module:
    """The model of ``config`` initialised from ``seed`` (the global RNG is left as it was)."""
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(config)


def load_model(plan: RunPlan, *, progress: bool = False, checkpoint: bytes | None = None) -> RunModel:
    """Build the plan's model, load its weights (fetching a catalog entry into the caches) and move it to the
    plan's device and dtype; with the plan's ``compile``, its forward compiled (the first forward compiles).
    ``checkpoint``: the uploaded bytes of a :meth:`RunPlan.detached` plan (checked against its digest)."""
    source = plan.weights
    if source.needs_data:
        if checkpoint is None:
            raise ConfigError("this plan's uploaded checkpoint is no longer held by the plan (RunPlan.detached): "
                              "pass its bytes as checkpoint=", field="checkpoint")
        source = source.with_data(checkpoint)
    state, report, hf_config = None, "", plan.hf_config
    if not source.random:
        location: Any = source.data if source.data is not None else source.path
        if source.entry is not None:
            location = get_weights(source.entry, progress=progress)
        elif source.origin is not None:
            location = source.origin.weights_location(progress=progress)
        state, fmt, meta = read_checkpoint(location)  # refuses files that are not weights, or could run code
        hf_config = meta.get("config", hf_config)
    net = build_seeded(plan.config, source.seed)
    if state is not None:
        name = "the uploaded checkpoint" if source.data is not None else str(location)
        try:
            report = str(load_checkpoint(net, state)).replace("a state dict", name, 1)
        except CheckpointError as exc:
            raise CheckpointError(str(exc).replace("a state dict", name, 1)) from None
    net = net.to(device=plan.device, dtype=DTYPES[plan.dtype]).eval()
    if plan.compile:
        from .compiled import compile_model

        net = compile_model(net, plan.device)
    labels, labels_from, warnings = resolve_labels(plan.config, plan.preset, source, hf_config)
    if plan.dtype != "float32" and not devices.native_bfloat16(plan.device):
        warnings.append(devices.bfloat16_support(plan.device))
    return RunModel(net, labels, labels_from, source.random, report, warnings, scoring=plan.scoring)


def load_inputs(plan: RunPlan, clip: str | Path | bytes, *, limits: Limits | None = None) -> LoadedClip:
    """The clip decoded with the plan's recipe: ``tensor`` ``(views, 3, T, S, S)``. A plan made with the clip reads
    exactly its ``frame_indices``; one made without a clip samples them now, by the same rule."""
    return read_views(clip, plan.recipe, limits=limits, views=plan.views, frame_indices=plan.frame_indices or None)


def load_clip(source: str | Path | bytes, preset: Any, *, config: ModelConfig | None = None, recipe: Any = None,
              limits: Limits | None = None, views: tuple[int, int] = (1, 1)) -> LoadedClip:
    """Decode and preprocess a clip with the evaluation recipe of ``preset`` (a preset name, or a model named by
    where it lives).

    The recipe (frames, sampling, resampling, resize, crop, mean, std) is the one of the preset's published
    weights; ``config`` (the model's config, when built with other ``num_frames``/``img_size``) adapts its frame
    count and crop; ``recipe`` replaces it outright. ``views = (clips, crops)`` reads that many temporal clips ×
    spatial crops (the papers' multi-view test; crops 1 or 3). Raises
    :class:`~videoattn_core.errors.ConfigError` for an unknown preset or a model without a classification head.
    """
    return read_views(source, recipe or recipe_for(preset, config=config), limits=limits, views=views)


def classify(model: torch.nn.Module, views: torch.Tensor, *, device: torch.device | str = "cpu",
             dtype: torch.dtype | str = torch.float32, scoring: str = "softmax") -> torch.Tensor:
    """Softmax probabilities ``(classes,)`` averaged over the views ``(V, 3, T, S, S)``, one forward per view (the
    memory of one view at a time), as the papers' multi-view tests average scores. ``scoring="sigmoid"`` gives
    each class its own score instead (multi-label classifiers)."""
    if scoring not in ("softmax", "sigmoid"):
        raise ConfigError(f"scoring={scoring!r} is not allowed: softmax or sigmoid", field="scoring")
    total, dtype = None, resolve_dtype(dtype)
    with model_lock(model), torch.no_grad():  # never while another thread's capture sits on the model
        for view in views:
            logits = model(view.unsqueeze(0).to(device=device, dtype=dtype))
            if logits.ndim != 2 or logits.shape[0] != 1:
                raise ConfigError(f"the model returned logits of shape {tuple(logits.shape)}, not (1, classes)",
                                  field="model")
            logits = logits.float()[0]
            probs = (logits.sigmoid() if scoring == "sigmoid" else logits.softmax(dim=-1)).cpu()
            total = probs if total is None else total + probs
    return total / len(views)


def top_predictions(probs: torch.Tensor, labels: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of ``probs`` (classes,), best first, as ``{label, index, probability}``;
    a class without a label name shows its index."""
    top = torch.topk(probs, min(k, probs.numel()))
    return [{"label": class_name(labels, i), "index": int(i), "probability": float(p)}
            for p, i in zip(top.values.tolist(), top.indices.tolist())]


def first_view(views: torch.Tensor, device: torch.device | str, dtype: torch.dtype | str) -> torch.Tensor:
    """The first view ``(1, 3, T, S, S)`` of a clip's views, on ``device`` in ``dtype`` (what inspections,
    attention maps and explanations look at)."""
    return views[:1].to(device=torch.device(device), dtype=resolve_dtype(dtype))


def inspect_run(run: RunModel, views: torch.Tensor, device: str, dtype: str, *, capture: tuple[str, ...] = (),
                measure_macs: bool = True) -> Any:
    """One measured forward of the first view (:func:`videoattn_core.inspection.inspect`) on a shared model."""
    from ..inspection import inspect

    return inspect(run.model, first_view(views, device, dtype), attention_layers=list(capture),
                   measure_macs=measure_macs)
