"""feedbench's framework-neutral harness: the consumer loop, workloads, metrics, results,
isolation, errors, the multi-run harness and the CLI (docs/architecture.md is the map).

Importing this package loads neither torch nor TensorFlow; :func:`measure`, :func:`measure_with`,
:func:`resolve_device` (which need torch) and :func:`explain` (``feedbench explain`` in Python) are
imported on first use.
"""

import importlib
from typing import Any

from feedbench.pipelines.core.errors import (
    BatchError,
    ConfigError,
    DataError,
    DatasetError,
    FeedbenchError,
    LoaderError,
    LoaderTimeout,
    MissingDependencyError,
    OutputError,
    WorkloadError,
)
from feedbench.pipelines.core.files import cache_dir
from feedbench.pipelines.core.stats import LoaderStats, stats_of
from feedbench.pipelines.core.version import __version__
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.isolation import RunSpec, run_isolated
from feedbench.pipelines.loop.metrics import steady_state
from feedbench.pipelines.loop.result import RunResult
from feedbench.pipelines.workloads import Emulated, Workload, parse_workload

# Names that import torch, each from its module, on first use.
_LAZY = {
    "measure": "feedbench.pipelines.loop.measure",
    "measure_with": "feedbench.pipelines.loop.measure",
    "resolve_device": "feedbench.pipelines.loop.devices",
    "explain": "feedbench.pipelines.harness.explain",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'feedbench.pipelines' has no attribute {name!r}")


__all__ = [
    "BatchError",
    "ConfigError",
    "DataError",
    "DatasetError",
    "Emulated",
    "FeedbenchError",
    "LoaderError",
    "LoaderStats",
    "LoaderTimeout",
    "MeasureConfig",
    "MissingDependencyError",
    "OutputError",
    "RunResult",
    "RunSpec",
    "Workload",
    "WorkloadError",
    "__version__",
    "cache_dir",
    "explain",
    "measure",
    "measure_with",
    "parse_workload",
    "resolve_device",
    "run_isolated",
    "stats_of",
    "steady_state",
]
