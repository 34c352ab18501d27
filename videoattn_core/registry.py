"""Model families and their named presets.

A family pairs a config dataclass with the module class built from it; a preset is a named config of a family.
Families register themselves when their module under ``videoattn_core.models`` is imported.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Family:
    name: str
    config_cls: type[ModelConfig]
    model_cls: type[nn.Module]
    paper: str
    repository: str


@dataclass(frozen=True)
class Preset:
    """A named config. ``origin`` is the :class:`~videoattn_core.hub.HubModel` of a model named by where it lives
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


def register_family(config_cls: type[ModelConfig], model_cls: type[nn.Module], *, paper: str,
                    repository: str) -> None:
    _FAMILIES[config_cls.family] = Family(config_cls.family, config_cls, model_cls, paper, repository)


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
    Hugging Face ``config.json`` (:mod:`videoattn_core.hub`; its config is read, no weights are fetched)."""
    if isinstance(name, str) and name in _PRESETS:
        return _PRESETS[name]
    from .hub import looks_like_ref, open_model

    if looks_like_ref(name):
        model = open_model(name)
        return Preset(model.name, model.config, model.description(), origin=model)
    raise ConfigError(f"unknown model {name!r}; available: {', '.join(_PRESETS)}, or a Hugging Face model as "
                      f"hf:ORG/NAME[@REVISION] or the directory holding its config.json", field="model")


def get_config(name_or_config: str | ModelConfig, **overrides: Any) -> ModelConfig:
    """The config of a preset (or a given config) with ``overrides`` applied and validated."""
    base = name_or_config if isinstance(name_or_config, ModelConfig) else get_preset(name_or_config).config
    return base.replace(**overrides) if overrides else base


def family_of(config: ModelConfig) -> Family:
    return _FAMILIES[config.family]


def build_model(name_or_config: str | ModelConfig, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None, compile: bool = False, **overrides: Any) -> nn.Module:
    """Build a preset (or a config) with any hyperparameter overridden by its config field name.

    >>> model = build_model("timesformer_base", attention_type="joint_space_time", num_classes=174)

    The model is in eval mode; its input is ``(B, C, T, H, W)`` float and its output ``(B, num_classes)``
    logits. ``device="meta"`` builds it without allocating weights (for shape and cost analysis).
    ``compile=True`` returns it with its forward compiled by ``torch.compile``
    (:class:`~videoattn_core.compiled.CompiledModel`; the eager model is its ``_orig_mod``, which captures and
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
        from .compiled import compile_model

        model = compile_model(model, device)
    return model

