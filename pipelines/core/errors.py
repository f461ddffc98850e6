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


def one_line(exc: BaseException) -> str:
    """An exception's message on one line.

    A DataLoader re-raises a worker's exception with the worker's whole traceback in the
    message; its last line is the original error.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if "Original Traceback" in str(exc) else lines[0]
