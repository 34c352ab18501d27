"""Model families. Importing this package registers every family and its presets."""

from . import timesformer  # noqa: F401  (registers the family)
