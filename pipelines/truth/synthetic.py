"""Producers of known cost: the ground truth that the consumer loop is held to.

Each makes batches in the common image format, ``(images uint8 [B, 3, H, W], labels int64
[B])``, at a cost set in seconds, so that a run against an ``emulated:<c>`` workload has an
analytic steady state (:func:`feedbench.pipelines.loop.metrics.steady_state`). Users can run the
same check on their own machine (``python -m feedbench.pipelines.truth.validate``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from feedbench.pipelines.core.clock import sleep_exactly
from feedbench.pipelines.core.errors import ConfigError


def _batch(index: int, batch_size: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.full((batch_size, 3, side, side), index % 256, dtype=torch.uint8)
    labels = torch.arange(index * batch_size, (index + 1) * batch_size, dtype=torch.int64) % 10
    return images, labels


class SleepProducer:
    """Batches that each take `batch_s` seconds of sleep to make (the GIL stays free).

    Synchronous with ``prefetch=0``: the batch is made inside ``next()``, so a consumer
    step of c seconds gives a period of d + c. With ``prefetch=k`` a background thread
    makes batches into a queue of k while the consumer works: period max(d, c).

    Args:
        batch_s: Seconds to make one batch (d).
        batches: Batches per pass; None for endless.
        batch_size: Samples per batch.
        prefetch: Batches made ahead by a background thread; 0 for none.
        side: Image height and width.
    """

    def __init__(self, batch_s: float, *, batches: int | None = None, batch_size: int = 8, prefetch: int = 0,
                 side: int = 8) -> None:
        if batch_s < 0 or prefetch < 0 or batch_size <= 0:
            raise ConfigError("SleepProducer needs batch_s >= 0, prefetch >= 0, batch_size > 0; "
                              f"got {batch_s}, {prefetch}, {batch_size}")
        self.batch_s, self.batches, self.batch_size = batch_s, batches, batch_size
        self.prefetch, self.side = prefetch, side

    def _make(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = 0
        while self.batches is None or index < self.batches:
            sleep_exactly(self.batch_s)
            yield _batch(index, self.batch_size, self.side)
            index += 1

    def __iter__(self) -> Iterator[Any]:
        if self.prefetch == 0:
            return self._make()
        return _prefetched(self._make(), self.prefetch)


def _prefetched(source: Iterator[Any], depth: int) -> Iterator[Any]:
    """Runs `source` in a daemon thread, `depth` items ahead of the consumer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        for item in source:
            items.put(item)
        items.put(done)

    threading.Thread(target=produce, name="feedbench-prefetch", daemon=True).start()
    while (item := items.get()) is not done:
        yield item


def spin(seconds: float) -> None:
    """Keeps this thread's CPU busy for `seconds` of its own CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class CpuBoundDataset(torch.utils.data.Dataset):
    """A map-style dataset whose every sample costs `sample_s` seconds of CPU.

    In a DataLoader with W workers and batches of B, each worker makes a batch in B x
    sample_s of CPU time: with W cores free, batches arrive every B x sample_s / W.

    Args:
        sample_s: CPU seconds per sample.
        n: Samples.
        side: Image height and width.
    """

    def __init__(self, sample_s: float, n: int, side: int = 8) -> None:
        self.sample_s, self.n, self.side = sample_s, n, side

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        spin(self.sample_s)
        return np.full((3, self.side, self.side), index % 256, dtype=np.uint8), index % 10


class SleepingDataset(CpuBoundDataset):
    """A map-style dataset whose every sample takes `sample_s` seconds of sleep (the CPU stays
    free): in a DataLoader with W workers and batches of B, each worker makes a batch in
    B x sample_s, whatever else the machine is doing, so batches arrive every B x sample_s / W."""

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        sleep_exactly(self.sample_s)
        return np.full((3, self.side, self.side), index % 256, dtype=np.uint8), index % 10


def collate_numpy(samples: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Stacks samples into NumPy arrays, which cross from a worker pickled through its pipe.

    torch tensors would cross by shared memory, passing a file descriptor per tensor: about
    2 ms per batch on the main process here, a cost of its own that would blur the truth.
    """
    images = np.stack([image for image, _ in samples])
    labels = np.array([label for _, label in samples], dtype=np.int64)
    return images, labels


def cpu_bound_loader(batch_s: float, *, workers: int, batch_size: int = 4, batches: int = 10_000,
                     prefetch_factor: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader of spawned workers, each batch costing `batch_s` CPU seconds to make."""
    return _known_cost_loader(CpuBoundDataset(batch_s / batch_size, batches * batch_size), workers, batch_size,
                              prefetch_factor)


def sleeping_loader(batch_s: float, *, workers: int, batch_size: int = 4, batches: int = 10_000,
                    prefetch_factor: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader of spawned workers that sleep `batch_s` / `batch_size` per sample: each
    batch takes `batch_s` to make on one worker, with the CPU free."""
    return _known_cost_loader(SleepingDataset(batch_s / batch_size, batches * batch_size), workers, batch_size,
                              prefetch_factor)


def _known_cost_loader(dataset: torch.utils.data.Dataset, workers: int, batch_size: int,
                       prefetch_factor: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collate_numpy,
        num_workers=workers,
        prefetch_factor=prefetch_factor if workers else None,
        persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers else None,
    )


class _EndsTheProcess(SleepProducer):
    """A SleepProducer that ends its process (exit status 1) when let go, as Ray ends a process
    whose thread calls it after its session ended."""

    def __del__(self) -> None:
        import os

        os._exit(1)


def misbehaving(how: str) -> Any:
    """A loader factory that fails as `how` says, to show what isolation catches.

    "sigkill" (what the out-of-memory killer sends), "segfault", "hang" (never returns),
    "raise" (a Python exception while building the loader), or "exit-when-let-go" (a loader
    that measures well and ends its process, exit status 1, when it is let go).
    """
    import os
    import signal

    if how == "exit-when-let-go":
        return _EndsTheProcess(0.001, batch_size=2)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if how == "hang":
        while True:
            time.sleep(60)
    if how == "raise":
        raise RuntimeError("the loader could not be built")
    raise ConfigError(f"misbehaving: unknown way {how!r}; choose sigkill, segfault, hang, raise or exit-when-let-go")
