"""What a model named by where it lives says about itself, in words for a model card: the repository and its
commit, the architecture, every label, how its scores are read, and how its processor reads a clip. Everything
comes from :class:`~videoattn_core.weights.hub.HubModel`, i.e. from ``config.json`` and the processor config alone, so a
card is shown before any weights are fetched."""

from __future__ import annotations

from dataclasses import dataclass

from .hub import HubModel

#: how each scoring's numbers read (the Run page's caption, the chart's axis)
SCORING_WORDS = {
    "softmax": "softmax: one distribution over the classes (the scores add up to 100 %)",
    "sigmoid": "sigmoid: multi-label, each class scored on its own (independent scores from 0 to 1, not a "
               "distribution: they need not add up to 1)",
}


@dataclass(frozen=True)
class HubCard:
    rows: list[tuple[str, str]]  # (what, value), in reading order
    labels: str  # every label, compact: "0 Archery · 1 Biking · …"
    label_count: int
    processor: dict | None  # the processor config as the file says it
    warnings: list[str]


def hub_card(model: HubModel) -> HubCard:
    """The card of ``model`` (no file is fetched)."""
    ref, recipe = model.ref, model.recipe
    if ref.repo_id is not None:
        where = [("repository", f"{ref.repo_id} (revision {ref.revision})"),
                 ("commit", model.commit or "not resolved")]
    else:
        where = [("directory", str(model.directory))]
    labels = model.labels or []
    count = len(labels) or int(getattr(model.config, "num_classes", 0) or 0)
    weights = ", ".join(model.weights_files) or "none (shapes and costs only)"
    kind = next((model.processor.get(k) for k in ("image_processor_type", "video_processor_type",
                                                   "feature_extractor_type") if model.processor.get(k)), None
                ) if model.processor else None
    rows = [*where,
            ("architecture", f"{model.architecture} (family {model.family}, model_type "
                             f"{model.hf_config.get('model_type', '?')})"),
            ("labels", f"{count} ({'named in config.json id2label' if labels else 'not named: class indices'})"),
            ("problem type", f"{model.problem_type} → {SCORING_WORDS[model.scoring]}"),
            ("processor", f"{model.processor_file or 'none: the class defaults'}" + (f" ({kind})" if kind else "")),
            ("clips read as", f"{recipe.num_frames} frames, {recipe.sampling_rate or 1} apart from the first "
                              f"(the pipeline's sampling rate; the Run page can change it); {recipe.source}"),
            ("weights", f"{weights}, fetched at the first run")]
    text = " · ".join(f"{i} {name}" for i, name in enumerate(labels))
    return HubCard(rows, text, count, model.processor, list(model.warnings))
