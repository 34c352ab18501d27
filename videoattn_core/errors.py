"""Errors a user can cause, each carrying a message that says what was wrong and what is allowed.

The app and the command line catch :class:`VideoAttnError` and show its message; anything else is a bug.
"""


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
