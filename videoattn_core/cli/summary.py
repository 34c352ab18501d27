"""The ``summary`` command: per-layer shapes, axes, parameters and MACs of a model (no weights), as a table with
totals or as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import parse_assignments
from ..errors import ConfigError
from ..inspection import summarize
from ..registry import get_preset
from ..weights.hub import MODEL_HELP


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``summary`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("summary", help="per-layer shapes, axes, parameters and MACs of a model (no weights)")
    add_summary_arguments(p)
    p.set_defaults(func=cmd_summary)
    return p


def add_summary_arguments(parser: Any) -> None:
    """Arguments of ``python -m videoattn_core summary``."""
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--frames", type=int, default=None, help="input frames (default: the preset's)")
    parser.add_argument("--size", type=int, default=None, help="input height and width (default: the preset's)")
    parser.add_argument("--batch", type=int, default=1, help="input batch (default 1: figures per clip)")
    parser.add_argument("--set", dest="overrides", metavar="FIELD=VALUE", nargs="+", action="extend", default=[],
                        help="override a config field, e.g. --set attention_type=joint_space_time depth=8")
    parser.add_argument("--depth", type=int, default=None, help="show modules down to this depth only")
    parser.add_argument("--json", action="store_true", help="print JSON (params, macs, flops, input_shape, "
                                                            "layers, ...) instead of the table")


def cmd_summary(args: Any) -> int:
    """``summary``: the per-layer table with totals, or JSON."""
    overrides = parse_assignments(type(get_preset(args.model).config), args.overrides)
    if args.depth is not None and args.depth < 0:
        raise ConfigError(f"--depth={args.depth} is not allowed: --depth must be an integer ≥ 0", field="depth")
    summary = summarize(args.model, args.frames, args.size, batch=args.batch, **overrides)
    print(summary.to_json(indent=1) if args.json else summary.table(args.depth))
    return 0
