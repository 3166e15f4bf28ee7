"""Exceptions whose message is meant for the user: the CLI prints them as one line and exits 2."""

from __future__ import annotations


class VastError(Exception):
    """Base class: bad input from the user (a name, a file, a shape, a config key)."""


class UnknownModelError(VastError, ValueError):
    """A model name that is not registered."""


class CheckpointError(VastError, ValueError):
    """A checkpoint file that is missing, unreadable or does not fit the model."""


class InputShapeError(VastError, ValueError):
    """A tensor whose shape the model or operator cannot take."""


class ConfigError(VastError, ValueError):
    """A recipe or --set override that is unknown or has the wrong type."""


class DataError(VastError):
    """A data set, annotation file or video that cannot be used."""
