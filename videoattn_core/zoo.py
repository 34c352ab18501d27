"""The published zoo on one chart, and one clip through several models.

Every catalog entry (:data:`videoattn_core.weights.CATALOG`) becomes a :class:`ZooPoint`: the top-1 its source
published (``entry.metrics``, with ``entry.metrics_protocol`` saying how it was measured) against a cost derived
from the network the entry builds (the preset with ``entry.overrides``): MACs per view from
:func:`videoattn_core.inspection.summarize` × the views of the published test protocol (``recipe.clips`` ×
``recipe.crops``), or the parameter count, or a forward measured on this machine
(:func:`videoattn_core.analysis.measure_forward`). No accuracy or cost is written here.

:func:`pareto_front` keeps the points no other point beats (higher top-1 at no more cost). :func:`run_on_clip`
classifies one clip with one model through the run pipeline (:mod:`videoattn_core.runtime`, the same as
``vac.predict``) and explains its top class (:func:`videoattn_core.explanations.explain`);
:func:`common_moments` picks moments of the clip for several models that sample it differently, and
:func:`frames_at_moments` each model's input frames nearest to them (never one frame for two moments), with notes
where a model's window does not cover a moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .weights import CATALOG, WeightsEntry

DATASET_NAMES = {"kinetics400": "Kinetics-400", "kinetics600": "Kinetics-600", "ssv2": "Something-Something v2",
                 "diving48": "Diving48"}
#: the cost axes of the zoo chart: name -> axis title
COSTS = {
    "macs": "MACs per view × views of the published protocol",
    "params": "parameters",
    "time": "forward time per view on this machine × views (s)",
}


@dataclass(frozen=True)
class ZooPoint:
    """One catalog entry as a point of the zoo chart (every number derived or read from the catalog)."""

    name: str
    preset: str
    family: str
    dataset: str
    top1: float
    top5: float | None
    params: int
    macs_per_view: int
    clips: int
    crops: int
    num_frames: int
    sampling_rate: int | None
    target_fps: float
    crop: int
    resize: int
    metrics_protocol: str
    page: str
    source: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def views(self) -> int:
        return self.clips * self.crops

    @property
    def macs(self) -> int:
        """MACs of the whole published protocol: per view × views."""
        return self.macs_per_view * self.views

    @property
    def frames_text(self) -> str:
        if self.sampling_rate is None:
            return f"{self.num_frames} frames, one per equal segment of the video"
        return f"{self.num_frames} frames × every {self.sampling_rate} (at {self.target_fps:g} fps)"

    @property
    def protocol(self) -> str:
        """The protocol of the published number: frames × sampling, views, crop."""
        return (f"{self.frames_text}; {self.clips} clip{'s' if self.clips > 1 else ''} × {self.crops} "
                f"crop{'s' if self.crops > 1 else ''} = {self.views} view{'s' if self.views > 1 else ''}; "
                f"{self.crop} px crop (short side {self.resize})")

    def cost(self, axis: str, measured: Mapping[str, float] | None = None) -> float | None:
        if axis == "macs":
            return float(self.macs)
        if axis == "params":
            return float(self.params)
        if axis == "time":
            seconds = (measured or {}).get(self.name)
            return None if seconds is None else seconds * self.views
        raise ValueError(f"cost must be one of {', '.join(COSTS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.name, "preset": self.preset, "family": self.family, "dataset": self.dataset,
                "top1": self.top1, "top5": self.top5, "params": self.params, "macs_per_view": self.macs_per_view,
                "views": self.views, "macs": self.macs, "protocol": self.protocol,
                "metrics_protocol": self.metrics_protocol, "page": self.page}


def entry_config(entry: str | WeightsEntry):
    """The config the entry's checkpoint fits: its preset with the entry's overrides."""
    from .registry import get_config
    from .weights import get_entry

    entry = get_entry(entry)
    return get_config(entry.preset, **entry.overrides)


def point_of(entry: str | WeightsEntry, summarize: Callable[[Any], Any] | None = None) -> ZooPoint:
    """The zoo point of one catalog entry; ``summarize`` (config -> summary) lets the app share its cache."""
    from .inspection import summarize as summarize_config
    from .weights import get_entry

    entry = get_entry(entry)
    config = entry_config(entry)
    summary = (summarize or summarize_config)(config)
    r = entry.recipe
    return ZooPoint(
        name=entry.name, preset=entry.preset, family=config.family, dataset=entry.dataset,
        top1=float(entry.metrics["acc@1"]), top5=entry.metrics.get("acc@5"), params=int(summary.params),
        macs_per_view=int(summary.macs), clips=r.clips, crops=r.crops, num_frames=r.num_frames,
        sampling_rate=r.sampling_rate, target_fps=r.target_fps, crop=r.crop, resize=r.short_side(r.crops),
        metrics_protocol=entry.metrics_protocol, page=entry.page, source=entry.source,
        overrides=tuple(sorted(entry.overrides.items())))


def datasets(entries: Iterable[WeightsEntry] | None = None) -> list[str]:
    """The datasets with published top-1, the one with most entries first."""
    counts: dict[str, int] = {}
    for e in (CATALOG.values() if entries is None else entries):
        if "acc@1" in e.metrics:
            counts[e.dataset] = counts.get(e.dataset, 0) + 1
    return sorted(counts, key=lambda d: (-counts[d], d))


def points(dataset: str | None = None, summarize: Callable[[Any], Any] | None = None,
           entries: Iterable[WeightsEntry] | None = None) -> list[ZooPoint]:
    """Every catalog entry with a published top-1 (on ``dataset`` when given) as a zoo point."""
    return [point_of(e, summarize) for e in (CATALOG.values() if entries is None else entries)
            if "acc@1" in e.metrics and (dataset is None or e.dataset == dataset)]


def pareto_front(values: Iterable[tuple[str, float | None, float]]) -> list[str]:
    """Names of the points ``(name, cost, top1)`` on the Pareto frontier (maximise top-1, minimise cost), by
    increasing cost. A point is on it when no other point has at most its cost and at least its top-1 with one
    of the two strictly better; points without a cost are left out; equal points are kept."""
    known = sorted(((c, -t, n) for n, c, t in values if c is not None), key=lambda v: (v[0], v[1]))
    front: list[str] = []
    best, best_cost = -float("inf"), None
    for cost, neg_top1, name in known:
        top1 = -neg_top1
        if top1 > best or (top1 == best and cost == best_cost):
            front.append(name)
            best, best_cost = top1, cost
    return front


def measured_seconds(points_: Sequence[ZooPoint], device: str = "cpu", dtype: str = "float32", *,
                     measure: Callable[[Any, str, str], Mapping[str, float]] | None = None,
                     check: Callable[[ZooPoint], str | None] | None = None,
                     progress: Callable[[int, ZooPoint], None] | None = None
                     ) -> tuple[dict[str, float], dict[str, str]]:
    """One forward per point (random weights, the entry's input shape), one after the other: seconds per name,
    and the refusal of each point ``check`` refused (its memory estimate does not fit) without building it."""
    from .analysis import measure_forward

    measure = measure or (lambda config, dev, dt: measure_forward(config, dev, dt))
    seconds, refused = {}, {}
    for i, p in enumerate(points_):
        if progress is not None:
            progress(i, p)
        refusal = check(p) if check is not None else None
        if refusal:
            refused[p.name] = refusal
            continue
        seconds[p.name] = float(measure(entry_config(p.name), device, dtype)["time_s"])
    return seconds, refused


# ----------------------------------------------------------------------------------------------- one clip, many models


@dataclass
class ModelOnClip:
    """What one model makes of a clip: its softmax over the classes (the first view, as ``vac.predict`` with
    ``views="single"``), the frames it sees, and a map of where its top class comes from."""

    probabilities: np.ndarray  # (classes,)
    labels: list[str]
    labels_from: str
    random_init: bool
    frames: np.ndarray  # (T, S, S, 3) uint8, the first view before normalisation
    frame_indices: list[int]  # source frame of each input frame
    method: str
    heat: np.ndarray | None = None  # (T', h, w) on the model's token grid
    target: int | None = None
    note: str = ""
    unavailable: str | None = None  # why the method does not apply to this model
    warnings: list[str] = field(default_factory=list)
    scoring: str = "softmax"  # "sigmoid": a multi-label model's independent scores, not a distribution

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"class {index}"

    def top(self, k: int) -> list[dict[str, Any]]:
        """The ``k`` most probable classes, best first, as ``{label, index, probability}`` (as
        :func:`videoattn_core.runtime.top_predictions`)."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [{"label": self.label(int(i)), "index": int(i), "probability": float(self.probabilities[i])}
                for i in order]


def explanation_layers(summary: Any) -> list[str]:
    """The attention layers an explanation keeps (all of them): for the memory check of :func:`run_on_clip`."""
    return list(getattr(summary, "_attention_elems", {}))


def run_on_clip(plan: Any, clip: Any, *, method: str = "relevance", limits: Any = None) -> ModelOnClip:
    """Classify ``clip`` with the plan's model and explain its top class with ``method`` (see
    :func:`videoattn_core.explanations.explain`); a method that does not apply leaves ``heat`` None and says why."""
    import torch

    from . import explanations, runtime

    run = runtime.load_model(plan)
    loaded = runtime.load_inputs(plan, clip, limits=limits)
    with run.lock:
        probs = runtime.classify(run.model, loaded.tensor, device=plan.device, dtype=plan.dtype,
                                 scoring=run.scoring)
    frames = loaded.shown()
    out = ModelOnClip(probabilities=probs.numpy(), labels=run.labels, labels_from=run.labels_from,
                      random_init=run.random_init, frames=frames, frame_indices=list(loaded.clip.frame_indices[:loaded.clip.num_frames]),
                      method=method, warnings=list(run.warnings), scoring=run.scoring)
    target = int(torch.argmax(probs))
    try:
        with run.lock:
            explained = explanations.explain(run.model, runtime.first_view(loaded.tensor, plan.device, plan.dtype),
                                             target=target, method=method)
    except ValueError as exc:
        out.unavailable = str(exc)
    else:
        out.heat, out.target, out.note = explained.tokens, explained.target, explained.note
    return out


def common_moments(frame_indices: Sequence[Sequence[int]], count: int = 4) -> list[int]:
    """``count`` moments of a clip (source frame numbers) for models that sampled it differently
    (``frame_indices``: the source frame of each input frame, per model), evenly spread over the span every model
    covers (over all spans when they do not overlap)."""
    spans = [(min(ix), max(ix)) for ix in frame_indices if len(ix)]
    if not spans:
        return []
    low, high = max(s[0] for s in spans), min(s[1] for s in spans)
    if low > high:
        low, high = min(s[0] for s in spans), max(s[1] for s in spans)
    return sorted({int(round(v)) for v in np.linspace(low, high, count)})


def nearest_frames(frame_indices: Sequence[int], moments: Sequence[int]) -> list[int]:
    """The input frame (position) of one model nearest to each moment (the earlier one on a tie)."""
    return [int(np.argmin([abs(i - m) for i in frame_indices])) for m in moments]


@dataclass(frozen=True)
class ShownFrames:
    """The input frames of one model shown at the common moments of a clip (source frame numbers)."""

    moments: tuple[int, ...]  # the moment of each shown frame (a moment without a frame of its own is left out)
    positions: tuple[int, ...]  # input frame shown for each of those moments (its position in the model's input)
    sources: tuple[int, ...]  # the source frame that input frame read
    notes: tuple[str, ...]  # where a frame is not the nearest to its moment, or a source frame is repeated

    @property
    def titles(self) -> list[str]:
        """One title per shown frame: the moment, then what the model read."""
        return [f"at {m}: frame {s}" for m, s in zip(self.moments, self.sources)]

    def caption(self, frames: int) -> str:
        """What the row shows, ``frames`` being the model's input frames."""
        return (f"At source frames {', '.join(map(str, self.moments))}: source frames "
                f"{', '.join(map(str, self.sources))} (input frames {', '.join(map(str, self.positions))} of "
                f"{frames}).")


def frames_at_moments(frame_indices: Sequence[int], moments: Sequence[int]) -> ShownFrames:
    """For one model (``frame_indices``: the source frame each input frame read) the input frame shown at each of
    ``moments``: distinct input frames in time order, as near to their moments as can be (least total distance),
    preferring frames that read different source frames. A model with fewer input frames than moments shows each
    once and leaves the other moments out. The notes say where a moment lies outside the model's window, where a
    frame is not the nearest to its moment (the nearest is shown for another), where none is left for it, and
    where two shown frames read the same source frame (the model really read it twice)."""
    read = [int(i) for i in frame_indices]
    moments = sorted({int(m) for m in moments})
    if not read or not moments:
        return ShownFrames(tuple(moments), (), (), ())
    order = sorted(range(len(read)), key=lambda p: (read[p], p))  # input frames in time order

    @lru_cache(maxsize=None)
    def best(i: int, j: int, last: int) -> tuple:
        """Best matching of moments[i:] to order[j:] after a frame reading source ``last``: (−matched,
        repeated sources, total distance, pairs)."""
        if i == len(moments) or j == len(order):
            return (0, 0, 0, ())
        pos = order[j]
        taken = best(i + 1, j + 1, read[pos])
        match = (taken[0] - 1, taken[1] + (read[pos] == last), taken[2] + abs(read[pos] - moments[i]),
                 ((i, pos),) + taken[3])
        return min(match, best(i + 1, j, last), best(i, j + 1, last))

    pairs = best(0, 0, -1)[3]
    shown = {i: read[pos] for i, pos in pairs}  # moment index -> source frame shown
    low, high = min(read), max(read)
    notes = []
    for i, m in enumerate(moments):
        nearest = min(read, key=lambda s: (abs(s - m), s))
        where = f"frame {m} is outside this model's window (frames {low}–{high}); " if not low <= m <= high else ""
        if i not in shown:
            notes.append(f"{where or f'frame {m}: '}no input frame left for it (this model reads {len(read)} "
                         f"frames, fewer than the {len(moments)} moments)")
        elif shown[i] == nearest:
            if where:
                notes.append(f"{where}nearest input frame {nearest} shown")
        else:
            other = next((moments[k] for k, s in shown.items() if s == nearest), None)
            instead = f" (the nearest, {nearest}, is shown for frame {other})" if other is not None else ""
            notes.append(f"{where or f'frame {m}: '}input frame {shown[i]} shown{instead}")
    sources = [read[p] for _, p in pairs]
    for source in sorted({s for s in sources if sources.count(s) > 1}):
        at = [str(p) for _, p in pairs if read[p] == source]
        notes.append(f"frame {source} is shown {len(at)} times: the model read it {read.count(source)} times "
                     f"(positions {', '.join(at)} of its input)")
    return ShownFrames(tuple(moments[i] for i, _ in pairs), tuple(p for _, p in pairs), tuple(sources),
                       tuple(notes))
