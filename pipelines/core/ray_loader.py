"""Batches made by Ray Data, the loader of the ``ray`` backends (image and text): the same
map-style dataset, batch sampler and collate as the torch pipeline's DataLoader, each batch made
by one of `workers` Ray actors instead of a DataLoader worker process.

Each pass (``iter()``) is one execution of a Ray Dataset: the batch sampler's key lists for the
epoch, one row (and one block) per batch (``ray.data.from_items``; the keys pickled, so that they
come back exactly, whatever their type) -> ``map_batches(batch_size=1)`` with a callable class
holding the dataset and collate, on an actor pool of `workers` actors of one CPU
(``ActorPoolStrategy(size=K)``), which returns the batch as NumPy columns -> the consumer's
``iter_torch_batches(batch_size=1, prefetch_batches=prefetch)``, whose collate turns the columns
back into what collate made (its tensors as torch tensors). Ray Data keeps the order
(``preserve_order``). The session (a local Ray instance, or a cluster's address) is
:mod:`feedbench.pipelines.core.ray_cluster`'s. What each keyword means:

- `workers`: actors making batches (0: one, a Ray Data stage cannot run without one;
  "autotune": one per usable CPU).
- `prefetch`: batches ``iter_torch_batches`` fetches ahead (``prefetch_batches``; "autotune": 2;
  0: none); each actor holds IN_FLIGHT_PER_ACTOR more, in the making or queued to it.

Each actor has one intra-op thread, as a DataLoader worker has (ACTOR_ENV). What cannot be the
same: Ray Data starts each execution's actor pool anew, so every pass starts `workers` worker
processes that import torch and torchvision (4 to 7 s a pass on 2 cores, every epoch), where the
DataLoader keeps its workers between epochs; batches cross from the actors through Ray's object
store (shared memory on one machine, the network from another node) as Arrow tensors, copied
once more into the consumer's batch; the actors unpickle the dataset, so a cluster's nodes need
feedbench (and the pipeline's libraries) installed as this machine has them.
"""

from __future__ import annotations

import atexit
import logging
import pickle
import queue
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from feedbench.pipelines.core import ray_cluster
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import FeedbenchError, LoaderError, described
from feedbench.pipelines.core.threads import thread_count

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2  # batches given to an actor at once (Ray Data's default for one call at a time)
KEYS = "keys"
# One intra-op thread per actor, as a DataLoader worker has: Ray sets OMP_NUM_THREADS to an
# actor's CPUs only where the environment has none, and a measured run's has one (its CPU
# budget), so two actors of 2 threads each on 2 CPUs ran 10x slower than the DataLoader.
ACTOR_ENV = {"env_vars": {"OMP_NUM_THREADS": "1"}}


def actor_count(workers: int | str) -> int:
    """Actors for a config's `workers`: at least one; "autotune" is one per usable CPU."""
    return max(1, thread_count(workers))


def prefetch_batches(prefetch: int | str) -> int:
    """``iter_torch_batches``'s prefetch_batches for a config's `prefetch`: 2 for "autotune"."""
    return 2 if prefetch == AUTOTUNE else int(prefetch)


def to_columns(batch: tuple[Any, ...]) -> dict[str, Any]:
    """A collate's batch (a tuple) as the one-row NumPy columns of a Ray Data batch: a torch
    tensor ("t<i>") or NumPy array ("a<i>") as itself with a row axis in front, anything else
    (a list of problems) pickled ("p<i>")."""
    import numpy as np

    columns = {}
    for i, item in enumerate(batch):
        if isinstance(item, np.ndarray):
            columns[f"a{i}"] = item[None]
        elif type(item).__module__ == "torch" and hasattr(item, "numpy"):
            columns[f"t{i}"] = item.numpy()[None]
        else:
            columns[f"p{i}"] = np.array([pickle.dumps(item)], dtype=object)
    return columns


def from_columns(columns: dict[str, Any]) -> tuple[Any, ...]:
    """The tuple :func:`to_columns` was given, from one row of its columns; arrays are copied out
    of Ray's object store (read-only there), so that a batch is as writable as a DataLoader's."""
    items: list[Any] = [None] * len(columns)
    for name, column in columns.items():
        kind, i = name[0], int(name[1:])
        if kind == "p":
            items[i] = pickle.loads(column[0])
            continue
        array = column[0] if column.flags.writeable else column[0].copy()
        if kind == "t":
            import torch

            items[i] = torch.from_numpy(array)
        else:
            items[i] = array
    return tuple(items)


class _MakeBatch:
    """keys -> collate([dataset[key] for key in keys]) as columns: what one actor does for one
    batch (Ray Data makes one instance per actor, from the dataset and collate)."""

    def __init__(self, dataset: Any, collate: Callable[[list[Any]], Any]) -> None:
        self.dataset, self.collate = dataset, collate

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        (keys,) = rows[KEYS]
        return to_columns(self.collate([self.dataset[key] for key in pickle.loads(keys)]))


def _collate_class() -> type:
    """``iter_torch_batches``'s collate: one row of columns -> the batch (a NumpyBatchCollateFn,
    as Ray 2.47 and later ask for)."""
    from ray.data.collate_fn import NumpyBatchCollateFn

    class Unpack(NumpyBatchCollateFn):
        def __call__(self, batch: dict[str, Any]) -> Any:
            return from_columns(batch)

    return Unpack


class _Pass:
    """One pass's batches, asked of Ray's iterator from a thread of their own, one at a time,
    so that the consumer can check the cluster while it waits (:func:`ray_cluster.watch`);
    nothing is made ahead here."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self._batches = batches
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self.stuck = False
        self._thread = threading.Thread(target=self._serve, name="feedbench-ray-pass", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        iterator = iter(self._batches)
        try:
            while self._requests.get():
                try:
                    self._answers.put(("ok", next(iterator)))
                except StopIteration:
                    self._answers.put(("end", None))
                    return
                except BaseException as exc:  # noqa: BLE001 - raised by the consumer, translated
                    self._answers.put(("error", exc))
                    return
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                try:
                    close()  # ends the execution: its actors stop
                except Exception:  # noqa: BLE001 - a session already gone: nothing left to stop
                    log.debug("closing a pass of a Ray session that ended", exc_info=True)

    def next(self, address: str) -> tuple[str, Any]:
        self._requests.put(True)
        try:
            return ray_cluster.watch(address, lambda timeout_s: self._answers.get(timeout=timeout_s))
        except FeedbenchError:
            self.stuck = True  # waiting on a cluster that is gone: its thread may never come back
            raise

    def close(self, timeout_s: float = 30.0) -> None:
        """Ends the pass's execution (its actors stop) and waits for it (not when it is stuck on
        a cluster that is gone)."""
        self._requests.put(False)
        self._thread.join(0 if self.stuck else timeout_s)


_OPEN: weakref.WeakSet[RayLoader] = weakref.WeakSet()  # loaders in a Ray session


@atexit.register
def _close_all() -> None:
    for loader in list(_OPEN):
        loader.close()


class RayLoader:
    """Batches of `dataset` over `batch_sampler`'s key lists, made by Ray actors (see the module).

    Each ``iter()`` is the next pass over the batch sampler (an epoch, for feedbench's samplers),
    as a DataLoader's is. The first opens the Ray session (starts a local instance, or joins
    `address`); :meth:`close`, or the loader being collected, leaves it.

    Attributes:
        dataset: The map-style dataset.
        num_workers: Actors making batches (at least one).
        prefetch: Batches ``iter_torch_batches`` fetches ahead.
        address: The cluster's address; "" for a local instance.
        pin_memory: Whether batches are pinned (set by :meth:`use_device`: for CUDA only).
    """

    def __init__(self, dataset: Any, batch_sampler: Iterable[Sequence[Any]], collate: Callable[[list[Any]], Any],
                 workers: int | str, prefetch: int | str, address: str) -> None:
        ray_cluster.ray_installed()
        ray_cluster.check_address(address)  # an address that answers nothing fails now, not at the first batch
        self.dataset, self.batch_sampler, self.collate = dataset, batch_sampler, collate
        self.num_workers, self.prefetch = actor_count(workers), prefetch_batches(prefetch)
        self.address = address
        self.pin_memory = False
        self._joined = False
        self._pass: _Pass | None = None
        self._leave: weakref.finalize | None = None

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def use_device(self, device_type: str) -> None:
        import torch

        self.pin_memory = device_type == "cuda" and torch.cuda.is_available()

    def thread_roles(self) -> tuple[tuple[str, int], ...]:
        """(role, count): the actors making batches, and the one intra-op thread of each."""
        return (("Ray actors making batches", self.num_workers), ("intra-op per Ray actor", 1))

    def batches_ahead(self) -> int:
        """Batches made ahead of the consumer: IN_FLIGHT_PER_ACTOR per actor and the prefetch."""
        return IN_FLIGHT_PER_ACTOR * self.num_workers + self.prefetch

    def _open(self) -> None:
        if not self._joined:
            ray_cluster.join(self.address, self.num_workers)
            self._joined = True
            self._leave = weakref.finalize(self, ray_cluster.leave, self.address)
            _OPEN.add(self)

    def _dataset(self) -> Any:
        """The pass's Ray Dataset: this epoch's key lists, one row and block each, mapped by the actors."""
        import ray.data

        rows = [{KEYS: pickle.dumps(list(keys))} for keys in self.batch_sampler]
        if not rows:
            return None
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        pool = ray.data.ActorPoolStrategy(size=self.num_workers, max_tasks_in_flight_per_actor=IN_FLIGHT_PER_ACTOR)
        with warnings.catch_warnings():
            # max_restarts=0: an actor that dies fails the pass; Ray Data's default restarts it
            # for ever and re-runs its batches, so a batch that crashes its actor was retried
            # until the loop's timeout. Ray 2.60 has no named parameter for it yet, and calls
            # the keyword form deprecated.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                _MakeBatch, batch_size=1, compute=pool, num_cpus=1, fn_constructor_args=(self.dataset, self.collate),
                runtime_env=ACTOR_ENV, max_restarts=0)

    def _batches(self) -> Iterator[Any]:
        self.close_pass()
        if self._joined:
            ray_cluster.check_alive(self.address)  # before Ray's first call of the pass (see watch)
        self._open()
        dataset = self._dataset()
        if dataset is None:
            return
        made = dataset.iter_torch_batches(batch_size=1, prefetch_batches=self.prefetch, collate_fn=_collate_class()(),
                                          device="cpu")
        self._pass = current = _Pass(made)
        try:
            while True:
                kind, value = self._ask(current)
                if kind == "end":
                    return
                yield self._pinned(value)
        finally:  # the pass ended, or its consumer let it go: its actors stop now
            if self._pass is current:
                self.close_pass()

    def _ask(self, current: _Pass) -> tuple[str, Any]:
        kind, value = current.next(self.address)
        if kind == "error":
            raise _translated(value, self.address) from value
        return kind, value

    def close_pass(self) -> None:
        """Ends the pass under way, if any (its execution and actors)."""
        current, self._pass = self._pass, None
        if current is not None:
            current.close()

    def close(self) -> None:
        """Ends the pass under way and leaves the Ray session (the last loader of a local
        instance stops it, with every process it started; a cluster keeps running)."""
        self.close_pass()
        _OPEN.discard(self)
        if self._leave is not None:
            self._leave()  # once: a finalize runs at most once
        self._joined = False

    def _pinned(self, batch: Any) -> Any:
        if not self.pin_memory:
            return batch
        from torch.utils.data._utils.pin_memory import pin_memory

        return pin_memory(batch)

    def __iter__(self) -> Iterator[Any]:
        return self._batches()


def _translated(exc: BaseException, address: str) -> BaseException:
    """One of feedbench's errors, in one line, for what Ray's iterator raised: the cluster gone
    (naming it), an actor dead or raising (with its own error), or the error as it was."""
    if isinstance(exc, FeedbenchError):
        return exc
    cause = getattr(exc, "cause", None)
    if isinstance(cause, FeedbenchError):
        return cause
    name = type(exc).__name__
    if name in ("RaySystemError", "GetTimeoutError", "NodeDiedError", "RpcError", "RayConnectionError") or \
            isinstance(exc, ConnectionError):
        return ray_cluster.failure(address, exc)
    if name in ("ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "ObjectLostError"):
        return LoaderError(f"a Ray actor making batches in {ray_cluster.where(address)} died ({described(exc)})")
    if cause is not None:
        return LoaderError(f"a Ray actor making batches raised {_first_error(exc) or described(cause)}")
    return exc if isinstance(exc, Exception) else LoaderError(f"Ray's iterator raised {described(exc)}")


# "RuntimeError: message" lines of a remote traceback (Ray sends the actor's as text).
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.*)$", re.MULTILINE)


def _first_error(exc: BaseException) -> str | None:
    """"Type: message" of the error an actor raised first, from the traceback text Ray puts in
    its RayTaskError (whose own cause is Ray Data's "UDF failed to process a data block")."""
    found = _ERROR_LINE.findall(str(exc).split("The above exception was the direct cause")[0])
    if not found:
        return None
    name, message = found[-1]
    return f"{name.rpartition('.')[2]}: {message.strip()}"
