"""The ``python -m videoattn_core`` command line.

Each subcommand is a function taking parsed arguments and returning an exit status. Errors a user can cause
(:class:`~videoattn_core.errors.VideoAttnError`) end with exit status 2 and one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import VideoAttnError
from ..run import devices
from ..registry import get_preset, list_models
from . import evaluate, explain, predict, summary


def _cmd_models(args: argparse.Namespace) -> int:
    for name in list_models():
        print(f"{name:28s} {get_preset(name).description}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors end like every user error: exit status 2 and one ``error: ...`` line (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m videoattn_core", description="Build, inspect and run video transformers.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list the model presets")
    p.set_defaults(func=_cmd_models)
    for command in (predict, explain, evaluate, summary):
        command.add_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    devices.flush_denormals()  # before the first parallel operation, so that PyTorch's workers start with it
    try:
        with warnings.catch_warnings():  # warnings a user sees (a compile that fell back) as one line, no source
            warnings.showwarning = _one_line_warning
            return args.func(args)
    except VideoAttnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
