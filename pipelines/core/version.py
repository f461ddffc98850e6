"""The installed version of feedbench (its metadata), for what it writes and reports."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("feedbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
