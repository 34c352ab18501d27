"""The arguments the ``predict``, ``explain`` and ``evaluate`` commands share: which model with which weights, where
it runs, and config overrides (``--set FIELD=VALUE``, parsed by the model's own config class)."""

from __future__ import annotations

import argparse
from typing import Any

from ..weights.hub import MODEL_HELP


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The positional model, ``--weights ENTRY`` or ``--checkpoint FILE``, and ``--seed`` of random weights."""
    p.add_argument("model", help=MODEL_HELP)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", metavar="ENTRY", help="catalog entry, e.g. timesformer_base.hf_k400")
    group.add_argument("--checkpoint", metavar="FILE", help="checkpoint file or Hugging Face directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")


def add_device_arguments(p: argparse.ArgumentParser, *, dtype: bool = True) -> None:
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (default auto)")
    if dtype:
        p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="(default float32)")


def add_set_argument(p: argparse.ArgumentParser, example: str = "num_classes=10") -> None:
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override a config field, e.g. --set {example} (repeatable)")


def parse_sets(model: str, items: list[str]) -> dict[str, Any]:
    """``--set`` items as typed overrides of ``model``'s config (a :class:`ConfigError` names a bad one)."""
    from ..config import parse_assignments
    from ..registry import get_preset

    return parse_assignments(type(get_preset(model).config), items, flag="--set")
