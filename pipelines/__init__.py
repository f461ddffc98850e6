"""feedbench's framework-neutral harness: errors, cache, the TensorFlow import, the CLI."""

from importlib.metadata import PackageNotFoundError, version

from feedbench.pipelines._cache import cache_dir
from feedbench.pipelines.errors import ConfigError, DatasetError, FeedbenchError, MissingDependencyError

try:
    __version__ = version("feedbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "DatasetError",
    "FeedbenchError",
    "MissingDependencyError",
    "__version__",
    "cache_dir",
]
