"""Every cache of the app: data in ``st.cache_data`` (decoded clips, timelines, measurements, growth curves), summaries
in ``st.cache_resource``, and what weighs — models, inspections, explanations, side-by-side results — in one cache of
the core bounded by bytes (:class:`videoattn_core.resource_cache.ByteBudgetCache`, ``VIDEOATTN_CACHE_MB``; the least
recently used go first, their memory given back to the system). ``st.cache_resource.clear()`` clears that one too.
Each wraps one call of the core; nothing here computes. Summaries and growth curves also go through the core's disk cache
(:mod:`videoattn_core.inspection.summary_cache`), so that a restarted server does not summarise again."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import videoattn_core as vac
from pages._clips import clip_file
from pages._widgets import CLIP_UPLOAD_MB, REPOSITORY, RunInputs, uploaded_clip_bytes
from videoattn_core.attention import explanations, head_stats
from videoattn_core.attention import maps as attention_maps
from videoattn_core.clips import writer
from videoattn_core.cost import memory, zoo
from videoattn_core.figures import overlay
from videoattn_core.inspection import rows, summary_cache
from videoattn_core.run import devices, resource_cache, runtime, side_by_side, timing

#: what a page may read from a clip (an upload's size limit)
CLIP_LIMITS = vac.Limits(max_file_bytes=CLIP_UPLOAD_MB * 1024 ** 2)
#: models, captures and explanations of every session, within one budget of bytes
SHARED = resource_cache.ByteBudgetCache(kind=resource_cache.function_of)  # each function's newest entry stays


@st.cache_resource(show_spinner=False)
def _cleared_with_streamlit() -> object:
    """Computed again after every ``st.cache_resource.clear()`` (the app menu's "Clear caches", the tests), which
    then clears :data:`SHARED` as well."""
    SHARED.clear()
    return object()


def budgeted(fn):
    """``st.cache_resource`` for objects that weigh: kept in :data:`SHARED` (arguments named ``_…`` are not part of
    the key, as in Streamlit)."""
    kept = resource_cache.cached(SHARED)(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        _cleared_with_streamlit()
        return kept(*args, **kwargs)

    call.clear = kept.clear
    return call


@st.cache_resource(max_entries=512, show_spinner=False)
def summary(config: vac.ModelConfig, frames: int | None = None, size: int | None = None):
    """The static summary (shapes, params, MACs per layer) of a config (configs are frozen and hashable); shared
    read-only by all sessions."""
    return summary_cache.cached_summary(config, frames, size)


def memory_plan(config: vac.ModelConfig, device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    """What a one-view forward of the config takes at most (:func:`videoattn_core.cost.memory.memory_plan`); a
    newly counted peak is written back to the disk cache with the summary."""
    shared = summary(config)
    counted = len(shared.peak_bytes)
    plan = memory.memory_plan(shared, device, devices.DTYPES[dtype].itemsize)
    if len(shared.peak_bytes) != counted:
        summary_cache.save_summary(shared)
    return plan


def memory_check(run_summary, inputs: RunInputs, captured: tuple[str, ...] = ()) -> str | None:
    """A refusal message when the forward's estimated memory exceeds what the device has free, else None."""
    return memory.memory_plan(run_summary, inputs.device, devices.DTYPES[inputs.dtype].itemsize,
                              captured=captured)["refusal"]


def clip_source(clip: str) -> Any:
    """What a clip id reads: a sample's or server clip's file, or an upload's bytes (kept in the session)."""
    return uploaded_clip_bytes(clip) if clip.startswith("upload:") else clip_file(clip)


@st.cache_resource(max_entries=16, show_spinner=False)
def run_plan(preset: str, config: vac.ModelConfig, inputs: RunInputs, views: str = "single",
             _checkpoint: bytes | None = None) -> runtime.RunPlan:
    """The core's plan of a run (the same pipeline as ``vac.predict`` and the CLI), made once for the page's
    inputs and then the key of everything computed from it: the clip probed and its frames chosen, the
    weights' config fields merged into ``config``, MACs and memory estimated from the cached summary. The
    weights "repository" are those of a model named by where it lives (``hf:ORG/NAME``). An uploaded checkpoint's
    bytes stay with the session that uploaded them, not with the plan (:meth:`~runtime.RunPlan.detached`): plans
    of earlier uploads do not keep those alive."""
    weights = inputs.weights
    entry = None if weights in ("random", REPOSITORY) or inputs.uploaded_weights else weights
    return runtime.plan_run(preset, clip_source(inputs.clip), weights=entry, checkpoint=_checkpoint,
                            overrides=config.diff(vac.get_preset(preset).config), device=inputs.device,
                            dtype=inputs.dtype, views=views, sampling_rate=inputs.sampling_rate,
                            limits=CLIP_LIMITS, summarize=summary).detached()


def load_model(plan: runtime.RunPlan, checkpoint: bytes | None = None) -> runtime.RunModel:
    """The plan's model ready to run, shared by every session (within the budget of :data:`SHARED`) and by every
    plan of the same model, weights, device and dtype; ``checkpoint``: the session's uploaded bytes, when the
    plan's weights are an upload. Random weights are seeded (seed 0, as the CLI's default), so a shared link shows
    the same predictions to everyone."""
    return _load_model(plan.model_key, plan, checkpoint)


@budgeted
def _load_model(model_key: tuple, _plan: runtime.RunPlan, _checkpoint: bytes | None) -> runtime.RunModel:
    return runtime.load_model(_plan, checkpoint=_checkpoint)


def _plan_key(plan: runtime.RunPlan) -> tuple:
    return plan.key


#: how ``st.cache_data`` keys a plan: by what the run computes from
BY_PLAN = {runtime.RunPlan: _plan_key}


@dataclass
class LoadedClipView:
    tensor: Any  # (views, C, T, S, S) model input
    frames: np.ndarray  # (T, S, S, 3) uint8: what the model sees in the first view, before normalisation
    description: str
    notes: list[str]
    frame_indices: list[int]


@st.cache_data(max_entries=16, show_spinner=False, hash_funcs=BY_PLAN)
def load_clip(plan: runtime.RunPlan, _source: Any) -> LoadedClipView:
    """The plan's frames of the clip decoded and preprocessed with its recipe (an upload's bytes never touch the
    disk)."""
    loaded = runtime.load_inputs(plan, _source, limits=CLIP_LIMITS)
    frames = loaded.shown()
    return LoadedClipView(loaded.tensor, frames, loaded.clip.summary(), list(loaded.clip.notes),
                          list(loaded.clip.frame_indices))


@budgeted
def run_inspection(plan: runtime.RunPlan, capture: tuple[str, ...], _loaded: runtime.RunModel,
                   _clip: LoadedClipView, measure_macs: bool = True):
    """One measured forward of the first view (per-layer time, measured MACs, captured attention), shared by all
    sessions."""
    return runtime.inspect_run(_loaded, _clip.tensor, plan.device, plan.dtype, capture=capture,
                               measure_macs=measure_macs)


@budgeted
def view_probabilities(plan: runtime.RunPlan, _loaded: runtime.RunModel, _clip: LoadedClipView):
    """Softmax probabilities (a multi-label model's independent sigmoid scores) averaged over the plan's views
    (the core's ``classify``, as ``vac.predict``)."""
    return runtime.classify(_loaded.model, _clip.tensor, device=plan.device, dtype=plan.dtype,
                            scoring=_loaded.scoring)


@st.cache_data(max_entries=8, show_spinner=False, hash_funcs=BY_PLAN)
def timeline(plan: runtime.RunPlan, stride_s: float, _loaded: runtime.RunModel, _source: Any) -> dict[str, Any]:
    """Predictions over the whole clip, a window every ``stride_s`` seconds (the core's ``timeline_of``)."""
    from videoattn_core.run.predict import timeline_of

    return timeline_of(plan, _loaded, _source, stride_s=stride_s, probabilities=True, limits=CLIP_LIMITS)


@budgeted
def rollout(plan: runtime.RunPlan, _loaded: runtime.RunModel, _clip: LoadedClipView) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema) of the CLS token over the token grid; ValueError with the reason when
    the architecture does not allow it."""
    return attention_maps.rollout(_loaded.model, runtime.first_view(_clip.tensor, plan.device, plan.dtype))


@budgeted
def explanation(plan: runtime.RunPlan, method: str, target: int | None, layer: str | None,
                _loaded: runtime.RunModel, _clip: LoadedClipView) -> explanations.Explanation:
    """The class-specific map of the first view (:func:`videoattn_core.attention.explanations.explain`), shared by all
    sessions; ValueError with the reason where the method does not apply (not cached)."""
    return explanations.explain(_loaded.model, runtime.first_view(_clip.tensor, plan.device, plan.dtype),
                                target=target, method=method, layer=layer)


@st.cache_data(max_entries=8, show_spinner=False, hash_funcs=BY_PLAN)
def explanation_video(plan: runtime.RunPlan, method: str, target: int | None, layer: str | None, kind: str,
                      _frames: np.ndarray, _heat: np.ndarray) -> bytes:
    """The map laid over the frames, enlarged, with its colour bar, encoded as ``kind`` (mp4 or gif) as the
    ``explain`` command writes it; keyed like :func:`explanation` (``_frames`` and ``_heat`` are its clip's frames
    and map)."""
    exported, scale = overlay.export_frames(_frames, _heat, title=method)
    return writer.encode_video(exported, kind=kind, comment=scale)


@budgeted
def head_statistics(plan: runtime.RunPlan, _loaded: runtime.RunModel,
                    _clip: LoadedClipView) -> head_stats.HeadStats:
    """Mean attention distance (pixels, frames), entropy and attention to CLS of every head of every attention
    call on the first view (:func:`videoattn_core.attention.head_stats.head_statistics`), shared by all sessions."""
    return head_stats.head_statistics(_loaded.model, runtime.first_view(_clip.tensor, plan.device, plan.dtype))


@st.cache_data(max_entries=32, show_spinner=False)
def measure_forward(config: vac.ModelConfig, device: str, dtype: str) -> dict[str, float]:
    """Wall time and peak tensor memory of one forward (:func:`videoattn_core.run.timing.measure_forward`)."""
    return timing.measure_forward(config, device, dtype)


@st.cache_data(max_entries=256, show_spinner=False)
def growth_curves(config: vac.ModelConfig, axis: str):
    """MACs against frames or size (:func:`videoattn_core.cost.growth.growth_curves`), shared by all sessions."""
    return summary_cache.cached_growth_curves(config, axis, summarize=summary)


@st.cache_data(show_spinner=False)
def preset_rows() -> list[dict[str, Any]]:
    """Every preset with its description and parameter count (:func:`videoattn_core.inspection.rows.preset_rows`)."""
    return rows.preset_rows()


@st.cache_data(show_spinner=False)
def zoo_points(dataset: str) -> list:
    """The catalog entries on ``dataset`` as zoo points (:func:`videoattn_core.cost.zoo.points`; summaries shared)."""
    return zoo.points(dataset, summarize=summary)


@budgeted
def model_on_clip(plan: runtime.RunPlan, method: str, _source: Any):
    """One model's top-k and explanation on the plan's clip (:func:`videoattn_core.run.side_by_side.run_on_clip`),
    shared by all sessions."""
    return side_by_side.run_on_clip(plan, _source, method=method, limits=CLIP_LIMITS)


@st.cache_data(max_entries=8, show_spinner=False)
def evaluation_report(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A results file of ``evaluate`` (its bytes): header, rows and the metrics computed from them."""
    from videoattn_core.evaluation import compute_metrics, results

    header, rows = results.parse_results(data)
    return header, rows, compute_metrics(rows, header.get("labels"), pairs=15, worst=50)
