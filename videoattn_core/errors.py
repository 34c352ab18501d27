"""Errors a user can cause, each carrying a message that says what was wrong and what is allowed.

The app and the command line catch :class:`VideoAttnError` and show its message; anything else is a bug.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


class VideoAttnError(Exception):
    """Base class of every error caused by user input (a setting, a file, a link)."""


class ConfigError(VideoAttnError, ValueError):
    """An impossible hyperparameter or combination of hyperparameters.

    ``field`` names the offending config field (or ``None`` for a cross-field problem)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class CheckpointError(VideoAttnError):
    """A checkpoint that cannot be read, or that does not fit the model it is loaded into."""


class VideoError(VideoAttnError):
    """A clip that cannot be decoded, or breaks the configured limits."""


class WeightsError(VideoAttnError):
    """Published weights that cannot be found, fetched or verified."""


#: a command-line subcommand: parsed arguments in, exit status out
Command = Callable[[argparse.Namespace], int]


def one_line_failures(what: str, run: Command) -> Command:
    """``run`` with the failures no user input explains (a kernel error, memory) reported as one ``error:`` line
    and exit status 1; errors a user can cause (:class:`VideoAttnError`) go on to :func:`main` (exit status 2)."""
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except VideoAttnError:
            raise
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError, MemoryError, OSError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else ""
            print(f"error: {what} failed ({type(exc).__name__}: {text[:300]})", file=sys.stderr)
            return 1
    return wrapped
