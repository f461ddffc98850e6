"""What a loader tells the consumer loop about itself: the loader-stats contract.

A loader may report facts the loop records and a workload sizes itself by: the samples it
dropped and counted (``on_error="skip"``), documents it truncated, its vocabulary size and
number of classes (the ``textcls`` workload), and how many batches it makes ahead (the
"auto" warm-up). It does so in one of two ways, both explicit:

- it has a method ``loader_stats() -> LoaderStats`` (feedbench's DataLoaders do), or
- it was registered with :func:`attach` (feedbench's tf.data pipelines are: a
  ``tf.data.Dataset`` is not ours to subclass). A dataset derived from a registered one
  (``.take()``, ``.map()``, ``.with_options()``, ...) reports the stats of the registered
  dataset it was derived from: :func:`stats_of` follows tf.data's inputs back to it.

Anything else reports nothing (``LoaderStats()``: zero skipped, nothing else known).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.machine import usable_cpus


@dataclass(frozen=True)
class LoaderStats:
    """Facts a loader reports (None: it does not say).

    Attributes:
        skipped: Samples dropped and counted (bad images or records under ``on_error="skip"``).
        truncated: Documents cut to ``max_len`` (text), each counted once.
        vocab_size: Token ids the batches may hold: ids lie in ``[0, vocab_size)`` (text).
        num_classes: Labels lie in ``[0, num_classes)``.
        batches_ahead: Batches the loader makes ahead of the consumer (workers x prefetch).
        threads: The threads it runs, by role ("main process intra-op", "intra-op per worker",
            "tf.data private pool", ...), as (role, count) pairs: the choice of each mode, recorded.
    """

    skipped: int = 0
    truncated: int = 0
    vocab_size: int | None = None
    num_classes: int | None = None
    batches_ahead: int | None = None
    threads: tuple[tuple[str, int | str], ...] = ()


@runtime_checkable
class ReportsStats(Protocol):
    """A loader that reports its stats itself."""

    def loader_stats(self) -> LoaderStats: ...


@runtime_checkable
class ExplainsStalls(Protocol):
    """A loader that can say why no batch comes (a disaggregated loader: a dead worker, a
    service that no longer answers); "" when it knows of nothing wrong."""

    def stall_reason(self) -> str: ...


@runtime_checkable
class UsesDevice(Protocol):
    """A loader that adapts to the device its batches go to (pins memory for CUDA only)."""

    def use_device(self, device_type: str) -> None: ...


def use_device(loader: Any, device_type: str) -> None:
    """Tells `loader` the type of device ("cpu", "cuda") its batches go to, if it asks."""
    if isinstance(loader, UsesDevice):
        loader.use_device(device_type)


# Loaders registered by attach(): a weak key, so that registering keeps nothing alive.
_ATTACHED: weakref.WeakKeyDictionary[Any, Callable[[], LoaderStats]] = weakref.WeakKeyDictionary()
_MAX_DEPTH = 64  # inputs followed back from a derived dataset before giving up


def attach(loader: Any, stats: Callable[[], LoaderStats]) -> Any:
    """Registers `stats` (called when the loop asks, so counts may grow) for `loader`; returns it."""
    _ATTACHED[loader] = stats
    return loader


def stats_of(loader: Any) -> LoaderStats:
    """The stats `loader` reports, itself or through a registered input; LoaderStats() if none."""
    if isinstance(loader, ReportsStats):
        return loader.loader_stats()
    frontier, seen = [loader], set()
    for _ in range(_MAX_DEPTH):
        if not frontier:
            break
        current = frontier.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        try:
            stats = _ATTACHED.get(current)
        except TypeError:  # not weakly referenceable: nothing can be attached to it
            stats = None
        if stats is not None:
            return stats()
        frontier.extend(_inputs(current))
    return LoaderStats()


def _inputs(loader: Any) -> list[Any]:
    """The datasets a tf.data dataset was derived from (none for anything else)."""
    if not type(loader).__module__.startswith("tensorflow"):
        return []
    inputs = getattr(loader, "_inputs", None)
    try:
        return list(inputs()) if callable(inputs) else []
    except (TypeError, AttributeError, NotImplementedError):
        return []


def batches_ahead(workers: int | str, prefetch: int | str) -> int:
    """Batches a loader of `workers` and `prefetch` makes ahead of its consumer, as feedbench's
    loaders report it: workers (every usable CPU for "autotune") x depth, the depth being
    `prefetch`, at least 1 (a DataLoader keeps one batch in flight per worker even at
    prefetch 0), and 2 for "autotune"."""
    count = len(usable_cpus()) if workers == AUTOTUNE else int(workers)
    depth = max(1, prefetch) if isinstance(prefetch, int) and not isinstance(prefetch, bool) else 2
    return count * depth
