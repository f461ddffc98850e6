"""The one way feedbench imports TensorFlow.

With torch 2.14 and tensorflow 2.21 in one process, importing tensorflow before
torchvision makes triton's extension (pulled in by ``torchvision.ops``) crash the
interpreter. Every tf code path imports TensorFlow through :func:`import_tensorflow`, which
loads torch, torchvision and triton first, hides the GPU from TensorFlow (torch owns the
device), and says clearly what is missing.

TensorFlow's C++ start-up lines (oneDNN, "failed call to cuInit" on a machine without a
GPU, the absl pre-initialization notice) are written straight to file descriptor 2 before
absl logging starts, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. They are captured
while TensorFlow starts and passed to this module's logger at DEBUG level (``feedbench -v``
shows them); anything else written meanwhile is written back to stderr, and if the import
fails, its last lines are part of the error.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from feedbench.pipelines.core.errors import MissingDependencyError
from feedbench.pipelines.core.machine import usable_cpus

log = logging.getLogger(__name__)

# A line of TensorFlow's C++ logging (absl/glog format: severity, date, time, thread, file:line]).
_CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] |^WARNING: All log messages before absl::")


def _preload_torch() -> None:
    """Imports torch, torchvision and triton (where installed) before TensorFlow."""
    for name in ("torch", "torchvision", "torchvision.ops", "triton"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue


@contextlib.contextmanager
def _captured_fd2() -> Iterator[list[str]]:
    """Sends what is written to file descriptor 2 to a temporary file while the block runs.

    Yields a list that holds the captured lines once the block has ended. Where fd 2 cannot
    be redirected (closed, or not a real descriptor), nothing is captured.
    """
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def import_tensorflow() -> ModuleType:
    """Returns the ``tensorflow`` module, imported in the order that works beside torch.

    Raises:
        MissingDependencyError: TensorFlow is not installed.
    """
    if sys.modules.get("tensorflow") is not None:
        return sys.modules["tensorflow"]
    _preload_torch()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _captured_fd2() as startup:
        try:
            tf = importlib.import_module("tensorflow")
        except ImportError as exc:
            failure: ImportError | None = exc
        else:
            failure = None
            hidden = _hide_gpu(tf)
    if failure is not None:
        said = f"; it said: {' / '.join(startup[-3:])}" if startup else ""
        raise MissingDependencyError(
            f"this needs TensorFlow, which cannot be imported ({failure}){said}; "
            "install it with `pip install tensorflow`"
        ) from failure
    _pass_on(startup)
    if hidden is not None:
        # TensorFlow initialized its devices before this call: too late to hide the GPU.
        log.warning("TensorFlow's devices were already initialized; it may hold the GPU (%s)", hidden)
    return tf


def _pass_on(lines: list[str]) -> None:
    """Logs TensorFlow's C++ start-up lines at DEBUG and writes anything else back to stderr."""
    others = []
    for line in lines:
        if _CPP_LOG_LINE.match(line):
            log.debug("tensorflow start-up: %s", line)
        else:
            others.append(line)
    if others:
        sys.stderr.write("\n".join(others) + "\n")
        sys.stderr.flush()


def _hide_gpu(tf: ModuleType) -> RuntimeError | None:
    """Hides every GPU from TensorFlow; returns the error if its devices were already set up."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as exc:
        return exc
    return None


def import_tfds() -> ModuleType:
    """Returns ``tensorflow_datasets``, imported after TensorFlow the safe way.

    Raises:
        MissingDependencyError: tensorflow-datasets is not installed.
    """
    import_tensorflow()
    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as exc:
        raise MissingDependencyError(
            f"this needs tensorflow-datasets, which cannot be imported ({exc}); "
            "install it with `pip install tensorflow-datasets`"
        ) from exc


def private_threads(dataset: Any, workers: int | str,
                    prefetch: int | str = 1) -> tuple[Any, tuple[tuple[str, int | str], ...]]:
    """`dataset` running on a tf.data thread pool of its own, one thread per CPU this process may
    use (the pool tf.data would size from them by default, made explicit and recorded), and the
    threads each role runs: (role, count) pairs for ``LoaderStats.threads``.

    `workers` 0 and `prefetch` 0 are made to mean what they say: tf.data's default rewrites
    otherwise run a plain ``map`` as a parallel map with AUTOTUNE parallelism
    (``map_parallelization``: 2 calls here, seen in the profiler's events) and add a prefetch
    after the last op (``inject_prefetch``).
    """
    tf = import_tensorflow()
    size = len(usable_cpus())
    options = tf.data.Options()
    options.threading.private_threadpool_size = size
    if workers == 0:
        options.experimental_optimization.map_parallelization = False
    if prefetch == 0:
        options.experimental_optimization.inject_prefetch = False
    return dataset.with_options(options), (("tf.data private pool", size), ("map parallel calls", workers))
