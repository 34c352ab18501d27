"""One clip through several models, shown at the same moments: :func:`run_on_clip` classifies the clip with one
model through the run pipeline (:mod:`videoattn_core.run.runtime`, the same as ``vac.predict``) and explains its top
class (:func:`videoattn_core.attention.explanations.explain`); :func:`common_moments` picks moments of the clip for
several models that sample it differently, and :func:`frames_at_moments` each model's input frames nearest to them
(never one frame for two moments), with notes where a model's window does not cover a moment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..attention import explanations
from . import runtime
from ..units import class_name


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
        return class_name(self.labels, index)

    def top(self, k: int) -> list[dict[str, Any]]:
        """The ``k`` most probable classes, best first, as ``{label, index, probability}`` (as
        :func:`videoattn_core.run.runtime.top_predictions`)."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [{"label": self.label(int(i)), "index": int(i), "probability": float(self.probabilities[i])}
                for i in order]


def explanation_layers(summary: Any) -> list[str]:
    """The attention layers an explanation keeps (all of them): for the memory check of :func:`run_on_clip`."""
    return list(getattr(summary, "attention_elems", {}))


def run_on_clip(plan: Any, clip: Any, *, method: str = "relevance", limits: Any = None) -> ModelOnClip:
    """Classify ``clip`` with the plan's model and explain its top class with ``method`` (see
    :func:`videoattn_core.attention.explanations.explain`); a method that does not apply leaves ``heat`` None and says why."""
    run = runtime.load_model(plan)
    loaded = runtime.load_inputs(plan, clip, limits=limits)
    probs = runtime.classify(run.model, loaded.tensor, device=plan.device, dtype=plan.dtype,
                             scoring=run.scoring)
    frames = loaded.shown()
    out = ModelOnClip(probabilities=probs.numpy(), labels=run.labels, labels_from=run.labels_from,
                      random_init=run.random_init, frames=frames, frame_indices=list(loaded.clip.frame_indices[:loaded.clip.num_frames]),
                      method=method, warnings=list(run.warnings), scoring=run.scoring)
    target = int(torch.argmax(probs))
    try:
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
