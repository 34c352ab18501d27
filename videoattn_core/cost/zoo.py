"""The published zoo on one chart: accuracy against cost.

Every catalog entry (:data:`videoattn_core.weights.lookup.CATALOG`) becomes a :class:`ZooPoint`: the top-1 its source
published (``entry.metrics``, with ``entry.metrics_protocol`` saying how it was measured) against a cost derived
from the network the entry builds (the preset with ``entry.overrides``): MACs per view from
:func:`videoattn_core.inspection.summarize` × the views of the published test protocol (``recipe.clips`` ×
``recipe.crops``), or the parameter count, or a forward measured on this machine
(:func:`videoattn_core.run.timing.measured_seconds`). No accuracy or cost is written here.

:func:`pareto_front` keeps the points no other point beats (higher top-1 at no more cost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..weights.catalog.records import WeightsEntry
from ..weights.lookup import CATALOG, entry_config

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


def point_of(entry: str | WeightsEntry, summarize: Callable[[Any], Any] | None = None) -> ZooPoint:
    """The zoo point of one catalog entry; ``summarize`` (config -> summary) lets the app share its cache."""
    from ..inspection import summarize as summarize_config
    from ..weights.lookup import get_entry

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
