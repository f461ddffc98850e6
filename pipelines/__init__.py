"""feedbench's framework-neutral harness: the consumer loop, workloads, metrics, results,
isolation, errors and the CLI.

Importing this package loads neither torch nor TensorFlow; :func:`measure` (which needs
torch) is imported on first use.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from feedbench.pipelines.core.cache import cache_dir
from feedbench.pipelines.core.errors import (
    ConfigError,
    DatasetError,
    FeedbenchError,
    MissingDependencyError,
)
from feedbench.pipelines.core.stats import LoaderStats, stats_of
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.isolation import RunSpec, run_isolated
from feedbench.pipelines.loop.metrics import steady_state
from feedbench.pipelines.loop.result import RunResult
from feedbench.pipelines.workloads import Emulated, Workload, parse_workload

try:
    __version__ = version("feedbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_FROM_CONSUMER = ("LoaderError", "LoaderTimeout", "WorkloadError", "measure", "resolve_device")


def __getattr__(name: str) -> Any:
    if name in _FROM_CONSUMER:  # imports torch: only when asked for
        from feedbench.pipelines.loop import measure as consumer

        return getattr(consumer, name)
    raise AttributeError(f"module 'feedbench.pipelines' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "DatasetError",
    "Emulated",
    "FeedbenchError",
    "LoaderError",
    "LoaderStats",
    "LoaderTimeout",
    "MeasureConfig",
    "MissingDependencyError",
    "RunResult",
    "RunSpec",
    "Workload",
    "WorkloadError",
    "__version__",
    "cache_dir",
    "measure",
    "parse_workload",
    "resolve_device",
    "run_isolated",
    "stats_of",
    "steady_state",
]
