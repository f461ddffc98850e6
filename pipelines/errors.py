"""The one small hierarchy of feedbench's errors.

The library raises these with a message that names the file, record, step or flag at fault;
the CLI prints that message as one line and exits non-zero.
"""


class FeedbenchError(Exception):
    """Base of every error feedbench raises on purpose."""


class ConfigError(FeedbenchError, ValueError):
    """An argument or configuration value that cannot be used."""


class DatasetError(FeedbenchError):
    """A dataset that cannot be made, found, read or trusted."""


class MissingDependencyError(FeedbenchError, ImportError):
    """A framework or library that this code path needs is not installed."""
