"""Thread-based loading, the loader of the ``torch-threads`` backends (image and text): the
same map-style dataset, batch sampler and collate as the torch pipeline's DataLoader, each batch
made by one of `workers` threads of the calling process instead of a worker process.

Built on torchdata.nodes: the batch sampler's key lists (``IterableWrapper``) are made into
batches by a ``ParallelMapper`` with ``method="thread"``, in order, at most `workers` at once;
a ``Prefetcher`` holds what the threads made ahead; a ``PinMemory`` pins for CUDA. What each
keyword means, beside the DataLoader's (``core/dataloader.py``):

- `workers`: threads making batches (0: each batch is made in the calling thread when it is
  asked for, as the DataLoader's workers=0 does; "autotune": one per usable CPU).
- `prefetch`: batches made ahead per thread, as ``prefetch_factor`` counts them: `workers`
  batches in the making plus ``workers x (prefetch - 1)`` in the buffer (0 is taken as 1).

What cannot be the same: the threads share one interpreter, so the Python parts of a sample
(the sampler, the dataset's own code, collate) run one thread at a time (the GIL); decode and
the transforms run in torch and torchvision kernels, which release it. Batches never cross a
process: no pickling, no shared memory, no worker start. The threads share the process's
intra-op pool (``torch.get_num_threads()``, recorded), where each DataLoader worker process has
one intra-op thread of its own.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.machine import usable_cpus


def thread_count(workers: int | str) -> int:
    """Threads for a config's `workers`: "autotune" is one per usable CPU."""
    return len(usable_cpus()) if workers == AUTOTUNE else int(workers)


def depth(prefetch: int | str) -> int:
    """Batches made ahead per thread: `prefetch`, at least 1; 2 for "autotune"."""
    return 2 if prefetch == AUTOTUNE else max(1, int(prefetch))


def _shut_down(node: Any) -> None:
    """Shuts down every running iterator of a torchdata.nodes graph (its threads end and are
    joined): torchdata does it only when the iterators are collected."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        shutdown = getattr(current, "_shutdown", None)
        if callable(shutdown):
            shutdown()
        stack += [getattr(current, name, None) for name in ("root", "source", "_it")]


_OPEN: weakref.WeakSet[ThreadLoader] = weakref.WeakSet()  # loaders with threads running


@atexit.register
def _close_all() -> None:
    for loader in list(_OPEN):
        loader.close()


class _MakeBatch:
    """keys -> collate([dataset[key] for key in keys]): what one thread does for one batch."""

    def __init__(self, dataset: Any, collate: Callable[[list[Any]], Any]) -> None:
        self.dataset, self.collate = dataset, collate

    def __call__(self, keys: Sequence[Any]) -> Any:
        return self.collate([self.dataset[key] for key in keys])


class ThreadLoader:
    """Batches of `dataset` over `batch_sampler`'s key lists, made by threads (see the module).

    Each ``iter()`` is the next pass over the batch sampler (an epoch, for feedbench's
    samplers), as a DataLoader's is; the threads of an earlier pass are stopped when a new one
    starts or the loader is let go.

    Attributes:
        dataset: The map-style dataset.
        num_workers: Threads making batches (0: none, batches made in the calling thread).
        prefetch: Batches made ahead per thread.
        pin_memory: Whether batches are pinned (set by :meth:`use_device`: for CUDA only).
    """

    def __init__(self, dataset: Any, batch_sampler: Iterable[Sequence[Any]], collate: Callable[[list[Any]], Any],
                 workers: int | str, prefetch: int | str) -> None:
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.num_workers, self.prefetch = thread_count(workers), depth(prefetch)
        self.pin_memory = False
        self._make = _MakeBatch(dataset, collate)
        self._loader: Any = None

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def use_device(self, device_type: str) -> None:
        import torch

        pin = device_type == "cuda" and torch.cuda.is_available()
        if pin != self.pin_memory:
            self.pin_memory, self._loader = pin, None

    def thread_roles(self) -> tuple[tuple[str, int], ...]:
        """(role, threads): the threads making batches, and the process's intra-op threads they share."""
        import torch

        roles = [("main process intra-op", torch.get_num_threads())]
        if self.num_workers:
            roles.insert(0, ("threads making batches", self.num_workers))
        return tuple(roles)

    def _batches(self) -> Iterator[Any]:
        if not self.num_workers:
            for keys in self.batch_sampler:
                yield self._pinned(self._make(keys))
            return
        if self._loader is None:
            self._loader = self._build()
            _OPEN.add(self)
        try:
            yield from self._loader
        finally:  # the pass ended, or its consumer let it go: its threads stop now, not at exit
            self.close()

    def close(self) -> None:
        """Stops the threads of the pass under way and waits for them (a tenth of a second or
        so); the next ``iter()`` starts new ones. Left running to the interpreter's exit, a thread
        inside a torch kernel aborted the process ("terminate called without an active
        exception")."""
        loader, self._loader = self._loader, None
        _OPEN.discard(self)
        if loader is not None:
            _shut_down(loader)

    def _pinned(self, batch: Any) -> Any:
        if not self.pin_memory:
            return batch
        from torch.utils.data._utils.pin_memory import pin_memory

        return pin_memory(batch)

    def _build(self) -> Any:
        import torchdata.nodes as nodes

        root = nodes.ParallelMapper(nodes.IterableWrapper(self.batch_sampler), self._make,
                                    num_workers=self.num_workers, method="thread", in_order=True,
                                    max_concurrent=self.num_workers)
        if self.prefetch > 1:
            root = nodes.Prefetcher(root, prefetch_factor=self.num_workers * (self.prefetch - 1))
        if self.pin_memory:
            root = nodes.PinMemory(root)
        return nodes.Loader(root, restart_on_stop_iteration=True)

    def __iter__(self) -> Iterator[Any]:
        return self._batches()
