"""Model families and their named presets.

A family pairs a config dataclass with the module class built from it; a preset is a named config of a family.
Families register themselves when their module under ``videoattn_core.models`` is imported.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .config import ModelConfig
from .errors import ConfigError


def _reads_cls(config: ModelConfig) -> str:
    return "cls"


def _rollout_applies(config: ModelConfig) -> str | None:
    return None


@dataclass(frozen=True)
class HFMapping:
    """How a family reads a Hugging Face repository (:mod:`videoattn_core.weights.hf_reading`): the classifier classes and
    ``model_type`` it builds, the ``config.json`` fields it maps to its own (``fields``, for messages), the defaults
    of transformers' config class for fields a file leaves out, the function that maps a ``config.json`` to config
    fields (raising :class:`ConfigError` for a value the family cannot build), and the processor a repository of
    it names (``video_processor``: a ``video_preprocessor_config.json`` read with torchvision's resize)."""

    architectures: tuple[str, ...]
    model_type: str
    fields: Mapping[str, str]
    defaults: Mapping[str, Any]
    overrides: Callable[[dict[str, Any]], dict[str, Any]]
    processor_class: str = "VideoMAEImageProcessor"
    video_processor: bool = False


@dataclass(frozen=True)
class Family:
    """Everything the core knows about a family, declared where the family is registered (its own file).

    - ``checkpoint_layouts``: the foreign key layouts :func:`~videoattn_core.weights.checkpoints.load_checkpoint` reads;
      ``checkpoint_hint(state, wrong, config)``: the settings (``"num_frames=16"``) that would make a mismatching
        checkpoint fit; the loader words the sentence.
    - ``hf``: how a Hugging Face ``config.json`` and processor are read (:class:`HFMapping`), if at all.
    - ``paper_views``: the views of the paper's test protocol (spatial crops × temporal clips) a summary counts.
    - ``readout(config)``: the token(s) the classifier reads — ``"cls"`` (a CLS token, or V-JEPA 2's learned
      query), ``"frame_cls"`` (one CLS per frame, averaged), ``"encoder_cls"`` (a spatial encoder's CLS per frame
      read by a temporal encoder's CLS), ``"mean"`` or ``"first"`` (of the patch tokens, ``(t h w)`` order).
    - ``token_order``: the order of a layer's patch tokens, as an einops group (``"(t h w)"``, ``"(h w t)"``).
    - ``channels_last_features``: 5-D layer outputs are ``(B, T, H, W, C)`` (Grad-CAM's feature layout).
    - ``rollout_unavailable(config)``: why attention rollout does not apply, or ``None``.
    - ``layers(model)``: the layers Grad-CAM may use when the model has no attention blocks (``None``: its blocks
      holding an attention).
    - ``fallback_recipe``: how the family's presets without published weights read clips (the recipe of the
      closest published relative).
    """

    name: str
    config_cls: type[ModelConfig]
    model_cls: type[nn.Module]
    paper: str
    repository: str
    checkpoint_layouts: tuple[Any, ...] = ()
    checkpoint_hint: Callable[[dict, list, Any], list[str]] | None = None
    hf: HFMapping | None = None
    paper_views: int = 1
    readout: Callable[[ModelConfig], str] = _reads_cls
    token_order: str = "(t h w)"
    channels_last_features: bool = False
    rollout_unavailable: Callable[[ModelConfig], str | None] = _rollout_applies
    layers: Callable[[nn.Module], list[str]] | None = None
    fallback_recipe: Any = None  # catalog.records.Recipe for presets without published weights


@dataclass(frozen=True)
class Preset:
    """A named config. ``origin`` is the :class:`~videoattn_core.weights.hub.HubModel` of a model named by where it lives
    (``hf:ORG/NAME``, a directory), ``None`` for the presets registered here."""

    name: str
    config: ModelConfig
    description: str
    origin: Any = None

    @property
    def family(self) -> Family:
        return _FAMILIES[self.config.family]


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, Preset] = {}
#: how a name that is no preset may still name a model (videoattn_core.weights.hub registers the Hugging Face one): each
#: returns the :class:`Preset` it opens, or ``None`` when the name is not of its kind
_RESOLVERS: list[Callable[[str], "Preset | None"]] = []


def register_family(config_cls: type[ModelConfig], model_cls: type[nn.Module], *, paper: str, repository: str,
                    **traits: Any) -> Family:
    """Register a family: its config and model classes, the paper and repository it reproduces, and the traits of
    :class:`Family` the core reads (layouts, Hugging Face mapping, readout, ...)."""
    family = Family(config_cls.family, config_cls, model_cls, paper, repository, **traits)
    _FAMILIES[config_cls.family] = family
    return family


def register_resolver(resolve: Callable[[str], "Preset | None"]) -> None:
    """Let :func:`get_preset` open names that are not presets (models named by where they live)."""
    _RESOLVERS.append(resolve)


def register_preset(name: str, config: ModelConfig, description: str) -> None:
    if config.family not in _FAMILIES:
        raise RuntimeError(f"family {config.family!r} must be registered before its presets")
    _PRESETS[name] = Preset(name, config, description)


def list_models(family: str | None = None) -> list[str]:
    """Names of the presets, optionally of one family, in registration order."""
    return [n for n, p in _PRESETS.items() if family is None or p.config.family == family]


def list_families() -> list[Family]:
    return list(_FAMILIES.values())


def get_preset(name: str) -> Preset:
    """A registered preset, or the model a reference names: ``hf:ORG/NAME[@REVISION]`` or a directory holding a
    Hugging Face ``config.json`` (:mod:`videoattn_core.weights.hub`, a registered resolver; its config is read, no weights
    are fetched)."""
    if isinstance(name, str) and name in _PRESETS:
        return _PRESETS[name]
    for resolve in _RESOLVERS:
        preset = resolve(name)
        if preset is not None:
            return preset
    raise ConfigError(f"unknown model {name!r}; available: {', '.join(_PRESETS)}, or a Hugging Face model as "
                      f"hf:ORG/NAME[@REVISION] or the directory holding its config.json", field="model")


def get_config(name_or_config: str | ModelConfig, **overrides: Any) -> ModelConfig:
    """The config of a preset (or a given config) with ``overrides`` applied and validated."""
    base = name_or_config if isinstance(name_or_config, ModelConfig) else get_preset(name_or_config).config
    return base.replace(**overrides) if overrides else base


def family_of(config: ModelConfig) -> Family:
    return _FAMILIES[config.family]


def family_of_model(model: nn.Module) -> Family | None:
    """The registered family of a built model (its ``config``), or ``None`` for a module of none."""
    config = getattr(model, "config", None)
    return _FAMILIES.get(getattr(config, "family", None)) if isinstance(config, ModelConfig) else None


def build_model(name_or_config: str | ModelConfig, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None, compile: bool = False, **overrides: Any) -> nn.Module:
    """Build a preset (or a config) with any hyperparameter overridden by its config field name.

    >>> model = build_model("timesformer_base", attention_type="joint_space_time", num_classes=174)

    The model is in eval mode; its input is ``(B, C, T, H, W)`` float and its output ``(B, num_classes)``
    logits. ``device="meta"`` builds it without allocating weights (for shape and cost analysis).
    ``compile=True`` returns it with its forward compiled by ``torch.compile``
    (:class:`~videoattn_core.run.compiled.CompiledModel`; the eager model is its ``_orig_mod``, which captures and
    inspections use); on the CPU that needs a C++ compiler, else a :class:`ConfigError` is raised.
    """
    config = get_config(name_or_config, **overrides)
    model_cls = family_of(config).model_cls
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = model_cls(config)
    if dtype is not None:
        model = model.to(dtype)
    model = model.eval()
    if compile:
        from .run.compiled import compile_model

        model = compile_model(model, device)
    return model

