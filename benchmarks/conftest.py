"""Benchmarks: pytest-benchmark suites (run with `make bench`). torch is imported before
anything can import TensorFlow (DESIGN.md, "Import order").

The default set fits a few minutes on 2 cores; ``--feedbench-full`` runs the full set too.
A case of the full set only carries the ``full`` marker, on the test or on one parameter::

    @pytest.mark.parametrize("workers", [1, pytest.param(3, marks=pytest.mark.full)])

Benchmarks that measure a loader record its RunResult with
``feedbench.pipelines.pytest_plugin.record_result(benchmark, result, **extra)`` and group
by task (``@pytest.mark.benchmark(group="image")``).
"""

import sys
from pathlib import Path

import pytest
import torch  # noqa: F401
import torchvision  # noqa: F401

# The hand-written reference pipelines (reference.py) are importable by name, here and in the
# spawned processes that measure them (a spawned child starts with its parent's sys.path).
sys.path.insert(0, str(Path(__file__).parent))

FULL_OPTION = "--feedbench-full"


def pytest_addoption(parser):
    parser.getgroup("feedbench").addoption(
        FULL_OPTION, action="store_true", default=False,
        help="run the full benchmark set (every worker count, tokenizer, ...), not only the default few minutes")


def pytest_configure(config):
    config.addinivalue_line("markers", f"full: a benchmark of the full set only (runs with {FULL_OPTION})")


def pytest_collection_modifyitems(config, items):
    if config.getoption("feedbench_full"):
        return
    skip = pytest.mark.skip(reason=f"full set only: run with {FULL_OPTION}")
    for item in items:
        if item.get_closest_marker("full"):
            item.add_marker(skip)
