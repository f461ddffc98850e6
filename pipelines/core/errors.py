"""The one small hierarchy of feedbench's errors.

The library raises these with a message that names the file, record, step, flag or worker
at fault; the CLI prints that message as one line and exits non-zero.

    FeedbenchError
    ├── ConfigError            an argument or setting that cannot be used (also a ValueError)
    ├── DataError              data that cannot be used
    │   ├── DatasetError       a dataset that cannot be made, found, read or trusted
    │   └── BatchError         a batch the loop or the workload cannot use
    ├── LoaderError            the loader raised, stalled or ended too early (names the step)
    │   └── LoaderTimeout      no batch within the timeout
    ├── WorkloadError          the workload raised (names the step)
    └── MissingDependencyError a framework or library this code path needs (also an ImportError)
"""

import re
import signal


class FeedbenchError(Exception):
    """Base of every error feedbench raises on purpose."""


class ConfigError(FeedbenchError, ValueError):
    """An argument or configuration value that cannot be used."""


class DataError(FeedbenchError):
    """Data that cannot be used: a dataset, a record, a batch."""


class DatasetError(DataError):
    """A dataset that cannot be made, found, read or trusted."""


class BatchError(DataError):
    """A batch the loop or the workload cannot use (unknown type, no samples, a label out of range)."""


class LoaderError(FeedbenchError):
    """The loader raised, timed out or ended too early; the message names the step."""


class LoaderTimeout(LoaderError):
    """No batch arrived within the timeout."""


class WorkloadError(FeedbenchError):
    """The workload raised; the message names the step."""


class OutputError(FeedbenchError, OSError):
    """A file feedbench writes (results, a plot, a report, a JSON row) could not be written: a
    read-only or full file system, a folder that is not there. An OSError too, with its errno
    and strerror; its message names the file."""

    action = "cannot write it"

    def __str__(self) -> str:
        return f"{self.filename}: {self.action} ({self.strerror})"


class MissingDependencyError(FeedbenchError, ImportError):
    """A framework or library that this code path needs is not installed."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line.

    A DataLoader re-raises a worker's exception with the worker's whole traceback in the
    message; its last line is the original error. TensorFlow starts its errors with the
    function they came from (``{{function_node ...}}``), left out here.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if "Original Traceback" in str(exc) else lines[0]
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line)


# The last line of a Python traceback that TensorFlow put in its error's message: an error
# raised in a tf.data pipeline's Python function (feedbench's tf pipelines raise DatasetError
# naming the file or record there).
_CARRIED = re.compile(r"^feedbench(?:\.\w+)*\.(\w+Error): (.+)$", re.MULTILINE)


def described(exc: BaseException) -> str:
    """"Type: message" on one line; for an error that carries one of feedbench's (TensorFlow's
    UnknownError around a DatasetError raised in a tf.data function), that error's type and
    message, as the torch pipelines raise it."""
    carried = _CARRIED.findall(str(exc))
    if carried:
        name, message = carried[-1]
        return f"{name}: {message.strip()}"
    return f"{type(exc).__name__}: {one_line(exc)}"


def how_it_ended(exitcode: int) -> str:
    """A child process's end in words: "killed by SIGKILL", "exited with status 3"."""
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"
