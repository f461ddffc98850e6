"""Loaders of batches already made, for the ceilings of ``feedbench explain``: built in the
isolated run's process from a pipeline's factory, picklable until then.

- :class:`Resident`: one batch of the pipeline, held on the device and given again at every
  step. Through the consumer loop it measures the workload alone (no preprocessing, no
  delivery, no copy): the most the accelerator takes.
- :class:`Replayed`: a few batches of the pipeline, kept in memory and handed out again
  through the framework's own delivery at the same worker count: torch's DataLoader worker
  processes (each batch crosses through shared memory as a made batch does), threads of the
  process for the thread loaders (each hands out a copy, as it would a batch it made), or
  tf.data's prefetch buffer and iterator. It measures what delivery and the loop allow with the
  preprocessing removed.

Both report the original pipeline's stats (``loader_stats``), so that a workload sized by
the loader (the text classifier) is built the same way.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from feedbench.pipelines.core.dataloader import dataloader_options
from feedbench.pipelines.core.errors import LoaderError
from feedbench.pipelines.core.stats import LoaderStats, stats_of
from feedbench.pipelines.loop.adapter import to_device, to_torch


def _first(loader: Iterable[Any], count: int) -> list[Any]:
    """The first `count` batches of `loader` (fewer if it ends), as torch tensors on the host."""
    batches = [to_torch(batch) for batch in itertools.islice(iter(loader), count)]
    if not batches:
        raise LoaderError("the pipeline yielded no batch to replay")
    return [_owned(batch) for batch in batches]


def _owned(batch: Any) -> Any:
    """The batch's tensors cloned: a tensor shared with TensorFlow by DLPack must not outlive its pipeline."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(_owned(item) for item in batch)
    if isinstance(batch, dict):
        return {key: _owned(value) for key, value in batch.items()}
    return batch.clone()


def _is_tf(loader: Any) -> bool:
    return type(loader).__module__.startswith("tensorflow")


@dataclass(frozen=True)
class Resident:
    """A factory: the first batch of ``factory()``'s loader on `device`, yielded forever."""

    factory: Callable[[], Iterable[Any]]
    device: str = "auto"

    def __call__(self) -> _Again:
        from feedbench.pipelines.loop.devices import resolve_device

        loader = self.factory()
        (batch,) = _first(loader, 1)
        return _Again([to_device(batch, resolve_device(self.device))], stats_of(loader))


class _Again:
    """Yields its batches in turn, for ever; reports the stats of the pipeline they came from."""

    def __init__(self, batches: list[Any], stats: LoaderStats) -> None:
        self.batches, self.stats = batches, stats

    def loader_stats(self) -> LoaderStats:
        return self.stats

    def __iter__(self) -> Iterator[Any]:
        return itertools.cycle(self.batches)


@dataclass(frozen=True)
class Replayed:
    """A factory: the first `batches` batches of ``factory()``'s loader, replayed through the
    framework's delivery at `workers` (torch: DataLoader worker processes, `prefetch` per
    worker; torch-threads: threads, `prefetch` per thread; tf.data: `prefetch` batches in its
    buffer)."""

    factory: Callable[[], Iterable[Any]]
    workers: int
    prefetch: int = 2
    batches: int = 8

    def __call__(self) -> Any:
        loader = self.factory()
        made = _first(loader, self.batches)
        stats = stats_of(loader)
        if _is_tf(loader):
            return _tf_replay(made, self.prefetch, stats)
        from feedbench.pipelines.core.threads import ThreadLoader

        if isinstance(loader, ThreadLoader):
            return _ThreadReplay(made, self.workers, self.prefetch, stats)
        return _torch_replay(made, self.workers, self.prefetch, stats)


def _tf_replay(batches: list[Any], prefetch: int, stats: LoaderStats) -> Any:
    from feedbench.pipelines.core.frameworks import import_tensorflow
    from feedbench.pipelines.core.stats import attach

    tf = import_tensorflow()
    images_last = [tuple(t.permute(0, 2, 3, 1) if t.dim() == 4 else t for t in batch) for batch in batches]
    dataset = None
    for batch in images_last:  # as NHWC, as the pipeline gave them (the adapter made them NCHW views)
        one = tf.data.Dataset.from_tensors(tuple(tf.constant(t.contiguous().numpy()) for t in batch))
        dataset = one if dataset is None else dataset.concatenate(one)
    dataset = dataset.repeat()
    if prefetch:
        dataset = dataset.prefetch(prefetch)
    return attach(dataset, lambda: stats)


def _torch_replay(batches: list[Any], workers: int, prefetch: int, stats: LoaderStats) -> Any:
    import torch

    handle, path = tempfile.mkstemp(prefix="feedbench-replay-", suffix=".pt")
    os.close(handle)
    try:
        torch.save(batches, path)
        return _TorchReplay(path, len(batches), workers, prefetch, stats)
    except BaseException:
        os.unlink(path)
        raise


class _TorchReplay:
    """A DataLoader over saved batches: each worker loads them once from a temporary file (removed
    with this object) and hands out copies, which cross to the main process as the pipeline's
    own batches do."""

    def __init__(self, path: str, count: int, workers: int, prefetch: int, stats: LoaderStats) -> None:
        import torch

        self.stats = stats
        dataset = _SavedBatches(path, count)
        options = dataloader_options(workers, prefetch, preload=("torch",))
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, **options)
        self.path = path

    def loader_stats(self) -> LoaderStats:
        return self.stats

    def __iter__(self) -> Iterator[Any]:
        yield from self.loader

    def __del__(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            return


class _ThreadReplay:
    """A thread loader over the batches: each thread hands out a copy of one (made in the thread,
    as a batch it made would be), which goes to the consumer as the pipeline's own do."""

    def __init__(self, batches: list[Any], workers: int, prefetch: int, stats: LoaderStats) -> None:
        from feedbench.pipelines.core.threads import ThreadLoader

        self.stats = stats
        keys = [[index] for index in range(_SavedBatches.EPOCH)]
        self.loader = ThreadLoader(_Copies(batches), keys, _only, workers, prefetch)

    def loader_stats(self) -> LoaderStats:
        return self.stats

    def use_device(self, device_type: str) -> None:
        self.loader.use_device(device_type)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)


class _Copies:
    """Map-style: index -> a copy of batch index % count."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def __getitem__(self, index: int) -> Any:
        return _owned(self.batches[index % len(self.batches)])


def _only(items: list[Any]) -> Any:
    return items[0]


class _SavedBatches:
    """Map-style: index -> a copy of saved batch index % count; an epoch of 10,000 batches."""

    EPOCH = 10_000

    def __init__(self, path: str, count: int) -> None:
        self.path, self.count = path, count
        self._batches: list[Any] | None = None

    def __len__(self) -> int:
        return self.EPOCH

    def __getitem__(self, index: int) -> Any:
        import torch

        if self._batches is None:
            self._batches = torch.load(self.path, weights_only=True)
        return _shared_copy(self._batches[index % self.count])


def _shared_copy(batch: Any) -> Any:
    """A copy of the batch made straight into shared memory, as ``default_collate`` stacks a
    batch in a worker: one copy, which then crosses to the main process without another."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(_shared_copy(item) for item in batch)
    if isinstance(batch, dict):
        return {key: _shared_copy(value) for key, value in batch.items()}
    storage = batch._typed_storage()._new_shared(batch.numel(), device=batch.device)
    return batch.new(storage).resize_(batch.shape).copy_(batch)
