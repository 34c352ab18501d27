"""Published weights: look up catalog entries (the data is in :mod:`videoattn_core.weights.catalog`, one module per family),
the evaluation recipe of every preset, and the label lists of the datasets.

:func:`~videoattn_core.weights.downloads.get_weights` fetches an entry into torch hub's or the
Hugging Face cache and verifies what the source lets us verify; entries with neither hash nor size are marked
``verification="none"`` and say so.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WeightsError
from .catalog import build_catalog
from .catalog.mvit_swin import SWIN_OFFICIAL
from .catalog.records import Recipe, WeightsEntry

ASSETS = Path(__file__).resolve().parents[2] / "assets"
LABEL_FILES = {
    "kinetics400": "kinetics400_labels.txt",
    "kinetics600": "kinetics600_labels.txt",
    "ssv2": "something_something_v2_labels.txt",
}

CATALOG: dict[str, WeightsEntry] = {e.name: e for e in build_catalog()}

#: evaluation recipe per preset: the recipe of its first (default) catalog entry, or the paper's protocol
#: for presets without published weights
RECIPES: dict[str, Recipe] = {}
for _entry in CATALOG.values():
    RECIPES.setdefault(_entry.preset, _entry.recipe)
RECIPES["swin3d_l"] = replace(SWIN_OFFICIAL, source="Video Swin Transformer paper protocol for Swin-L at 224 px "
                                                    "(32×2 frames, ImageNet mean/std); no public checkpoint")


def list_weights(preset: str | None = None) -> list[WeightsEntry]:
    """Catalog entries, optionally those of one preset (its default first)."""
    return [e for e in CATALOG.values() if preset is None or e.preset == preset]


def get_entry(name: str | WeightsEntry) -> WeightsEntry:
    if isinstance(name, WeightsEntry):
        return name
    try:
        return CATALOG[name]
    except KeyError:
        close = [n for n in CATALOG if n.split(".")[0] == name.split(".")[0]]
        hint = f"; entries for {name.split('.')[0]}: {', '.join(close)}" if close else \
            f"; names look like {next(iter(CATALOG))}"
        raise WeightsError(f"unknown weights {name!r}{hint}") from None


def default_entry(preset: str) -> WeightsEntry | None:
    entries = list_weights(preset)
    return entries[0] if entries else None


def entry_overrides(entry: str | WeightsEntry, config: Any) -> dict[str, Any]:
    """The fields ``config`` must change for ``entry``'s checkpoint to fit it (the entry's overrides it does not
    already have, e.g. the class count of a fine-tuned head): the one place a run's config takes its weights'
    needs, for the run plan, the app's model picker and the zoo."""
    return {k: v for k, v in get_entry(entry).overrides.items() if getattr(config, k) != v}


def entry_config(entry: str | WeightsEntry, config: Any = None) -> Any:
    """``config`` (default: the entry's preset's) with what ``entry``'s checkpoint needs (:func:`entry_overrides`)."""
    from ..registry import get_config

    entry = get_entry(entry)
    config = config if config is not None else get_config(entry.preset)
    changed = entry_overrides(entry, config)
    return config.replace(**changed) if changed else config


def recipe_for(preset: Any, *, config: Any = None, entry: str | WeightsEntry | None = None,
               sampling_rate: int | None = None) -> Recipe:
    """The evaluation recipe of a preset (a name, or a :class:`~videoattn_core.registry.Preset`) or of a catalog
    ``entry`` of it, adapted to ``config``'s input size when given — the one place a recipe is adapted. A model named
    by where it lives (``hf:ORG/NAME``, a directory) reads clips as its own processor config says, its frames
    ``sampling_rate`` apart (default 1).

    Raises :class:`ConfigError` for an unknown preset, a model without a classification head, or a preset
    without a known recipe.
    """
    from ..registry import Preset, family_of, get_preset
    from .hf_reading import with_sampling_rate

    p = preset if isinstance(preset, Preset) else get_preset(preset)  # ConfigError for an unknown name
    cfg = config if config is not None else p.config
    if not getattr(type(cfg), "has_head", True):
        raise ConfigError(f"{p.name} has no classification head (input layout {type(cfg).input_layout}); clips are "
                          f"prepared with the evaluation recipe of a classifier, which it does not have",
                          field="model")
    if entry is not None:
        recipe = get_entry(entry).recipe
    else:  # presets without published weights borrow their family's fallback (the recipe of its closest relative)
        recipe = p.origin.recipe if p.origin is not None else RECIPES.get(p.name) or family_of(cfg).fallback_recipe
    if recipe is None:
        raise ConfigError(f"no evaluation recipe is known for {p.name}; presets with one: "
                          f"{', '.join(sorted(RECIPES))}", field="model")
    if config is not None:
        shape = config.input_shape()
        recipe = recipe.adapted(num_frames=int(shape[2]), crop=int(shape[-1]))
    if sampling_rate is not None:
        recipe = with_sampling_rate(recipe, sampling_rate)
    return recipe


# ----------------------------------------------------------------------------------------------- labels


def load_labels(dataset: str) -> list[str]:
    """The class names of ``kinetics400``, ``kinetics600`` or ``ssv2``, in index order (from ``assets/``)."""
    if dataset not in LABEL_FILES:
        raise WeightsError(f"no label list for {dataset!r}; known: {', '.join(LABEL_FILES)}")
    path = ASSETS / LABEL_FILES[dataset]
    try:
        labels = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise WeightsError(f"the label list {path} cannot be read: {exc}") from None
    return labels


def labels_from_hf_config(config: dict[str, Any] | None) -> list[str] | None:
    """The ``id2label`` of a Hugging Face ``config.json`` as a list in index order, or ``None``."""
    if not isinstance(config, dict) or not isinstance(config.get("id2label"), dict):
        return None
    try:
        pairs = sorted((int(k), str(v)) for k, v in config["id2label"].items())
    except (TypeError, ValueError):
        return None
    if [k for k, _ in pairs] != list(range(len(pairs))):
        return None
    return [v for _, v in pairs]


def read_hf_config(path: Path) -> dict[str, Any] | None:
    """The ``config.json`` of a checkpoint directory (as ``save_pretrained`` writes it), if any and valid."""
    candidate = path / "config.json"
    if not path.is_dir() or not candidate.is_file():
        return None
    try:
        data = json.loads(candidate.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
