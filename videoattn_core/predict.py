"""Predictions: run a preset on a clip with published weights, a checkpoint file, or random initialisation.

``python -m videoattn_core predict MODEL --clip FILE [--weights ENTRY | --checkpoint FILE] [--top-k K]
[--device auto|cpu|cuda] [--json] [--set FIELD=VALUE ...]`` prints the top-k labels with their probabilities.
Labels come from the checkpoint when it carries them (a Hugging Face ``config.json``), else from the label list of
the weights' dataset in ``assets/``; without weights the model is randomly initialised and the output says loudly
that its predictions mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError, VideoAttnError
from .video import Limits, load_clip

RANDOM_WARNING = ("WARNING: no weights were given, so the model is randomly initialised: these predictions mean "
                  "nothing. Pass --weights ENTRY (see the catalog) or --checkpoint FILE.")


@dataclass
class Prediction:
    """The outcome of :func:`predict`; ``predictions`` are ``{label, index, probability}`` dicts, best first."""

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

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weights": self.weights, "random_init": self.random_init,
                "warning": RANDOM_WARNING if self.random_init else None, "labels_from": self.labels_from,
                "device": self.device, "config_overrides": {k: _jsonable(v) for k, v in self.config_overrides.items()},
                "clip": self.clip, "recipe": self.recipe, "predictions": self.predictions, "warnings": self.warnings}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or ``None``): CUDA when available, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r} is not allowed: device must be auto, cpu or cuda", field="device") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but CUDA is not available here; use --device cpu or auto",
                          field="device")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={device!r} is not allowed: device must be auto, cpu or cuda", field="device")
    return dev


_HF_TIMESFORMER_FIELDS = {  # Hugging Face TimesformerConfig -> our field
    "image_size": "img_size", "patch_size": "patch_size", "num_channels": "in_chans", "num_frames": "num_frames",
    "hidden_size": "embed_dim", "num_hidden_layers": "depth", "num_attention_heads": "num_heads",
    "layer_norm_eps": "norm_eps", "qkv_bias": "qkv_bias", "attention_type": "attention_type",
}


def overrides_from_hf_config(family: str, hf_config: dict[str, Any] | None) -> dict[str, Any]:
    """Config fields a Hugging Face ``config.json`` implies for a model of ``family`` (TimeSformer only)."""
    if not hf_config or family != "timesformer" or hf_config.get("model_type", "timesformer") != "timesformer":
        return {}
    out = {ours: hf_config[theirs] for theirs, ours in _HF_TIMESFORMER_FIELDS.items() if theirs in hf_config}
    if "intermediate_size" in hf_config and "hidden_size" in hf_config and hf_config["hidden_size"]:
        out["mlp_ratio"] = float(hf_config["intermediate_size"]) / float(hf_config["hidden_size"])
    if isinstance(hf_config.get("id2label"), dict) and hf_config["id2label"]:
        out["num_classes"] = len(hf_config["id2label"])
    return out


def predict(model: str, clip: str | Path | bytes, *, weights: str | None = None,
            checkpoint: str | Path | bytes | None = None, top_k: int = 5, device: str | None = "auto",
            overrides: dict[str, Any] | None = None, limits: Limits | None = None) -> Prediction:
    """Classify ``clip`` with preset ``model``.

    ``weights`` names a catalog entry (fetched with :func:`~videoattn_core.weights.get_weights`); ``checkpoint``
    is a file, a Hugging Face directory or bytes; with neither the model is randomly initialised (and
    ``random_init`` says so). ``overrides`` set config fields (``{"num_classes": 10}``) on top of those the weights
    imply. Every problem a user can cause raises a :class:`~videoattn_core.errors.VideoAttnError`.
    """
    from .checkpoints import load_checkpoint, read_checkpoint
    from .registry import build_model, get_config, get_preset
    from .weights import (DATASET_CLASSES, default_entry, get_entry, get_weights, labels_from_hf_config,
                          load_labels, read_hf_config)

    if weights is not None and checkpoint is not None:
        raise ConfigError("give either weights (a catalog entry) or a checkpoint file, not both", field="weights")
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is not allowed: top_k must be an integer ≥ 1", field="top_k")
    preset = get_preset(model)
    if not type(preset.config).has_head:
        raise ConfigError(f"{model} has no classification head, so it makes no predictions; choose a classifier "
                          f"preset", field="model")
    dev = resolve_device(device)

    entry = get_entry(weights) if weights is not None else None
    if entry is not None and entry.preset != model:
        raise ConfigError(f"weights {entry.name} are for {entry.preset}, not {model}; run predict {entry.preset} "
                          f"--weights {entry.name}", field="weights")
    source: Any = None
    hf_config = None
    implied: dict[str, Any] = dict(entry.overrides) if entry is not None else {}
    if checkpoint is not None:
        source = checkpoint if isinstance(checkpoint, (bytes, bytearray)) else Path(checkpoint)
        if isinstance(source, Path):
            if not source.exists():
                raise CheckpointError(f"checkpoint {source} does not exist")
            hf_config = read_hf_config(source)
            implied.update(overrides_from_hf_config(preset.config.family, hf_config))
    implied.update(overrides or {})
    config = get_config(model, **implied)

    # inputs are checked before anything is downloaded or built: a bad clip or file fails fast
    loaded = load_clip(clip, model, config=config, limits=limits)
    if entry is not None:
        source = get_weights(entry)
    state = None
    if source is not None:
        state, _, meta = read_checkpoint(source)  # refuses files that are not weights, or could run code
        hf_config = meta.get("config", hf_config)
    net = build_model(config)
    labels_from = "none"
    if state is not None:
        try:
            load_checkpoint(net, state)
        except CheckpointError as exc:
            name = "the uploaded checkpoint" if isinstance(source, (bytes, bytearray)) else str(source)
            raise CheckpointError(str(exc).replace("a state dict", name, 1)) from None
    net = net.to(dev).eval()

    num_classes = int(getattr(config, "num_classes", 0) or 0)
    labels = labels_from_hf_config(hf_config)
    warnings: list[str] = []
    if labels is not None and len(labels) == num_classes:
        labels_from = "checkpoint config.json (id2label)"
    else:
        dataset, assumed = (entry.dataset, "") if entry is not None else (None, "")
        if dataset is None and source is None:
            fallback = default_entry(model)
            dataset = fallback.dataset if fallback is not None else None
        if dataset is None:  # a checkpoint without label names: a dataset with as many classes, if any
            dataset = next((d for d, n in DATASET_CLASSES.items() if n == num_classes), None)
            assumed = f", assumed from its {num_classes} classes"
        labels = load_labels(dataset) if dataset is not None else None
        if labels is not None and len(labels) == num_classes:
            labels_from = f"assets label list ({dataset}{assumed})"
        else:
            if source is not None:
                warnings.append(f"the checkpoint carries no label names for its {num_classes} classes: showing "
                                f"class indices")
            labels = [f"class {i}" for i in range(num_classes)]
            labels_from = "class indices"

    with torch.no_grad():
        logits = net(loaded.tensor.to(dev))
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise ConfigError(f"{model} returned logits of shape {tuple(logits.shape)}, not (1, classes)", field="model")
    predictions = top_predictions(logits, labels, top_k)
    clip_info = loaded.clip.info.to_dict()
    clip_info.update(sampled_indices=list(loaded.clip.frame_indices), padded_frames=loaded.clip.padded_frames,
                     notes=loaded.clip.notes)
    weights_name = entry.name if entry is not None else (
        "uploaded bytes" if isinstance(source, (bytes, bytearray)) else (str(source) if source is not None else None))
    return Prediction(model=model, predictions=predictions, weights=weights_name, random_init=source is None,
                      labels_from=labels_from, device=str(dev), clip=clip_info, recipe=loaded.recipe.to_dict(),
                      config_overrides=config.diff(preset.config), warnings=warnings + loaded.clip.notes)


def top_predictions(logits: torch.Tensor, labels: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of the first clip of ``logits`` (B, classes), best first, as
    ``{label, index, probability}`` (softmax probabilities); a class without a label name shows its index."""
    probs = logits.float().softmax(dim=-1)[0].cpu()
    top = torch.topk(probs, min(k, probs.numel()))
    return [{"label": labels[i] if i < len(labels) else f"class {i}", "index": int(i), "probability": float(p)}
            for p, i in zip(top.values.tolist(), top.indices.tolist())]


# ----------------------------------------------------------------------------------------------- command line


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``predict`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("predict", help="classify a clip with a model and print the top-k labels",
                       description="Classify a clip. Without --weights or --checkpoint the model is randomly "
                                   "initialised and its predictions mean nothing.")
    p.add_argument("model", help="preset name (see `models`)")
    p.add_argument("--clip", required=True, help="video file to classify")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", metavar="ENTRY", help="catalog entry, e.g. timesformer_base.hf_k400")
    group.add_argument("--checkpoint", metavar="FILE", help="checkpoint file or Hugging Face directory")
    p.add_argument("--top-k", type=int, default=5, help="how many labels to show (default 5)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (default auto)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set num_classes=10 (repeatable)")
    p.set_defaults(func=run)
    return p


def _parse_sets(model: str, items: list[str]) -> dict[str, Any]:
    from .config import coerce_overrides
    from .registry import get_preset

    raw: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set {item!r} is not FIELD=VALUE", field=None)
        raw[name.strip()] = value
    return coerce_overrides(type(get_preset(model).config), raw) if raw else {}


def run(args: argparse.Namespace) -> int:
    """The ``predict`` subcommand. Errors a user can cause propagate as VideoAttnError (exit 2, one line);
    anything else is reported in one line with exit status 1, never as a traceback."""
    try:
        result = predict(args.model, args.clip, weights=args.weights, checkpoint=args.checkpoint, top_k=args.top_k,
                         device=args.device, overrides=_parse_sets(args.model, args.set))
    except VideoAttnError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, MemoryError, OSError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: prediction failed ({type(exc).__name__}: {text[:300]})", file=sys.stderr)
        return 1
    if result.random_init:
        print(RANDOM_WARNING, file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if result.random_init:
        print("!! random initialisation: these predictions mean nothing !!")
    print(f"{result.model} · weights: {result.weights or 'none (random initialisation)'} · {result.device}")
    print(f"clip: {Path(str(args.clip)).name} — {result.clip['num_frames']} frames, "
          f"{result.clip['width']}×{result.clip['height']}; labels: {result.labels_from}")
    for note in result.warnings:
        print(f"note: {note}")
    width = max(len(p["label"]) for p in result.predictions)
    for rank, p in enumerate(result.predictions, 1):
        print(f"{rank:2d}. {p['label']:<{width}}  {100 * p['probability']:6.2f}%  (class {p['index']})")
    return 0
