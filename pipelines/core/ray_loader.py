"""Batches made by Ray Data, the loader of the ``ray`` backends (image and text): the same
map-style dataset, batch sampler and collate as the torch pipeline's DataLoader, each batch made
by a Ray task, at most `workers` at once, instead of by a DataLoader worker process.

Each pass (``iter()``) is one execution of a Ray Dataset: the batch sampler's key lists for the
epoch, one row (and one block) per batch (``ray.data.from_items``; the keys pickled, so that they
come back exactly, whatever their type) -> ``map_batches(batch_size=1)`` with a function, run as
stateless Ray tasks of one CPU, at most `workers` at once (``TaskPoolStrategy(size=K)``), which
returns the batch as NumPy columns -> the consumer's ``iter_torch_batches(batch_size=1,
prefetch_batches=prefetch)``, whose collate turns the columns back into what collate made (its
tensors as torch tensors). Ray Data keeps the order (``preserve_order``). The session (a local
Ray instance, or a cluster's address) is :mod:`feedbench.pipelines.core.ray_cluster`'s. What
each keyword means:

- `workers`: Ray tasks making batches at once (0: one, a Ray Data stage cannot run without one;
  "autotune": one per usable CPU); where the cluster has fewer CPUs, the rest wait for one.
- `prefetch`: batches ``iter_torch_batches`` fetches ahead (``prefetch_batches``; "autotune": 2;
  0: none). Ray Data runs the pass's tasks ahead of the consumer for as long as their batches fit
  in its share of the object store (:func:`made_ahead`): the whole pass where batches are small.

Each task's worker process has one intra-op thread, as a DataLoader worker has (TASK_ENV). Ray
keeps its worker processes between executions, as a DataLoader with persistent workers does: a
later epoch's tasks run in the processes that ran the first's, which imported torch and the
pipeline's libraries once. Measured on 2 cores (512 images of 224 px, batches of 32, 2 workers;
a loader's first batch of each of 3 epochs, 3 runs): a later epoch's first batch in 0.3-0.4 s,
where an actor pool, which Ray Data starts anew for each execution, took 6-7.5 s. The dataset
and collate are put in the object store once a pass and unpickled once a pass in each worker
process (_make_batch): Ray Data sends a task's arguments with every task, which for ImageNet's
listing (1.28 million paths, 15 MB pickled) cost 0.15 s a batch.

What cannot be the same: the first batch of a run waits for Ray to start and for its workers
to import torch (seconds); batches cross from the workers through Ray's object store (shared
memory on one machine, the network from another node) as Arrow tensors, copied once more into
the consumer's batch; the workers unpickle the dataset, so a cluster's nodes need feedbench (and
the pipeline's libraries) installed as this machine has them.
"""

from __future__ import annotations

import atexit
import logging
import pickle
import queue
import re
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from feedbench.pipelines.core import ray_cluster
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import FeedbenchError, LoaderError, described
from feedbench.pipelines.core.threads import thread_count

log = logging.getLogger(__name__)

KEYS = "keys"
# One intra-op thread per task's worker process, as a DataLoader worker has: Ray sets
# OMP_NUM_THREADS to a worker's CPUs only where the environment has none, and a measured run's
# has one (its CPU budget), so two workers of 2 threads each on 2 CPUs ran 10x slower than the
# DataLoader. (Ray starts and keeps worker processes per runtime environment: these are the
# task workers of this loader and of any other with the same environment.)
TASK_ENV = {"env_vars": {"OMP_NUM_THREADS": "1"}}
# Ray Data's share of the object store for an execution's blocks (Ray 2.60's
# ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION): what bounds how far it runs ahead.
DATA_SHARE_OF_STORE = 0.5


def task_count(workers: int | str) -> int:
    """Tasks at once for a config's `workers`: at least one; "autotune" is one per usable CPU."""
    return max(1, thread_count(workers))


def prefetch_batches(prefetch: int | str) -> int:
    """``iter_torch_batches``'s prefetch_batches for a config's `prefetch`: 2 for "autotune"."""
    return 2 if prefetch == AUTOTUNE else int(prefetch)


def made_ahead(batches: int, batch_bytes: int, prefetch: int, store_bytes: int) -> int:
    """Batches made ahead of the consumer by a pass of `batches` batches of about `batch_bytes`
    each, an upper estimate: Ray Data runs tasks for as long as what they made fits in its share
    of an object store of `store_bytes` (DATA_SHARE_OF_STORE), and the consumer prefetches
    `prefetch` more; a pass at most. The count of tasks at once does not change it. Measured
    (2 workers, a local store of 1 GiB, the consumer holding its first batch): 14 batches of
    38.5 MB ahead (15 here), 12 at prefetch 0 (13), 16 at prefetch 8 (21), 7 of 77 MB (8), a
    whole pass of 16 batches of 19 MB (16); one worker as two."""
    held = int(DATA_SHARE_OF_STORE * store_bytes) // max(1, batch_bytes)
    return min(batches, held + prefetch)


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


# In a Ray worker process: the dataset and collate of the pass it last made batches for, by the
# pass's key (one pass: a worker runs one task at a time, and a pass's tasks are all alike).
_PARTS: dict[str, tuple[Any, Callable[[list[Any]], Any]]] = {}


def _make_batch(rows: dict[str, Any], pass_key: str, parts: Any) -> dict[str, Any]:
    """keys -> collate([dataset[key] for key in keys]) as columns: what one Ray task does for one
    batch. `parts` is the pass's (dataset, collate) in the object store, fetched and unpickled
    by the first task of the pass that a worker process runs, kept for its others."""
    made = _PARTS.get(pass_key)
    if made is None:
        import ray

        _PARTS.clear()
        made = _PARTS[pass_key] = ray.get(parts)
    dataset, collate = made
    (keys,) = rows[KEYS]
    return to_columns(collate([dataset[key] for key in pickle.loads(keys)]))


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
        self._thread = threading.Thread(target=self._serve, name=ray_cluster.PASS_THREAD, daemon=True)
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
                    close()  # ends the execution: no task of it starts after
                except Exception:  # noqa: BLE001 - a session already gone: nothing left to stop
                    log.debug("closing a pass of a Ray session that ended", exc_info=True)

    def next(self, address: str) -> tuple[str, Any]:
        self._requests.put(True)
        try:
            return ray_cluster.watch(address, lambda timeout_s: self._answers.get(timeout=timeout_s))
        except FeedbenchError:
            self.stuck = True  # waiting on a cluster that is gone: its thread may never come back,
            self._thread.name = f"{ray_cluster.PASS_THREAD} (stuck)"  # and the session's end does not wait for it
            raise

    def close(self, timeout_s: float = 30.0) -> None:
        """Ends the pass's execution (no task of it starts after) and waits for it (not when it
        is stuck on a cluster that is gone)."""
        self._requests.put(False)
        self._thread.join(0 if self.stuck else timeout_s)


_OPEN: weakref.WeakSet[RayLoader] = weakref.WeakSet()  # loaders in a Ray session


@atexit.register
def _close_all() -> None:
    for loader in list(_OPEN):
        loader.close()


class RayLoader:
    """Batches of `dataset` over `batch_sampler`'s key lists, made by Ray tasks (see the module).

    Each ``iter()`` is the next pass over the batch sampler (an epoch, for feedbench's samplers),
    as a DataLoader's is. The first opens the Ray session (starts a local instance, or joins
    `address`); :meth:`close`, or the loader being collected, leaves it.

    Attributes:
        dataset: The map-style dataset.
        num_workers: Ray tasks making batches at once (at least one).
        prefetch: Batches ``iter_torch_batches`` fetches ahead.
        batch_bytes: About how many bytes a batch holds (for :meth:`batches_ahead`).
        address: The cluster's address; "" for a local instance.
        pin_memory: Whether batches are pinned (set by :meth:`use_device`: for CUDA only).
    """

    def __init__(self, dataset: Any, batch_sampler: Iterable[Sequence[Any]], collate: Callable[[list[Any]], Any],
                 workers: int | str, prefetch: int | str, address: str, batch_bytes: int) -> None:
        ray_cluster.ray_installed()
        ray_cluster.check_address(address)  # an address that answers nothing fails now, not at the first batch
        self.dataset, self.batch_sampler, self.collate = dataset, batch_sampler, collate
        self.num_workers, self.prefetch = task_count(workers), prefetch_batches(prefetch)
        self.address, self.batch_bytes = address, batch_bytes
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
        """(role, count): the Ray tasks making batches at once, and the one intra-op thread of each."""
        return (("Ray tasks making batches", self.num_workers), ("intra-op per Ray task", 1))

    def batches_ahead(self) -> int:
        """Batches made ahead of the consumer, an upper estimate (:func:`made_ahead`) for a local
        instance's object store; a cluster's, larger, may hold more."""
        return made_ahead(len(self), self.batch_bytes, self.prefetch, ray_cluster.object_store_bytes())

    def _open(self) -> None:
        if not self._joined:
            ray_cluster.join(self.address, self.num_workers)
            ray_cluster.before_ray_exits(_close_all)  # passes end before the session (and Ray) at exit
            self._joined = True
            self._leave = weakref.finalize(self, ray_cluster.leave, self.address)
            _OPEN.add(self)

    def _dataset(self) -> Any:
        """The pass's Ray Dataset: this epoch's key lists, one row and block each, mapped by Ray tasks."""
        import ray.data

        rows = [{KEYS: pickle.dumps(list(keys))} for keys in self.batch_sampler]
        if not rows:
            return None
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        parts = ray.put((self.dataset, self.collate))  # unpickled once a pass per worker (_make_batch)
        with warnings.catch_warnings():
            # max_retries=0: a task whose worker dies fails the pass; Ray Data's default retries
            # it for ever (max_retries=-1), so a batch that crashes its worker was made again
            # until the loop's timeout. Ray 2.60 has no named parameter for it, and calls the
            # keyword form deprecated.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                _make_batch, batch_size=1, compute=ray.data.TaskPoolStrategy(size=self.num_workers), num_cpus=1,
                fn_args=(uuid.uuid4().hex, parts), runtime_env=TASK_ENV, max_retries=0)

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
        finally:  # the pass ended, or its consumer let it go: its execution ends now
            if self._pass is current:
                self.close_pass()

    def _ask(self, current: _Pass) -> tuple[str, Any]:
        kind, value = current.next(self.address)
        if kind == "error":
            raise _translated(value, self.address) from value
        return kind, value

    def close_pass(self) -> None:
        """Ends the pass under way, if any (its execution; Ray keeps the worker processes)."""
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


# Ray's errors, by class name (and their subclasses': ObjectReconstructionFailedError is an
# ObjectLostError): the cluster gone, and a task's worker process gone.
_CLUSTER_GONE = frozenset(("RaySystemError", "GetTimeoutError", "NodeDiedError", "RpcError", "RayConnectionError"))
_WORKER_GONE = frozenset(("WorkerCrashedError", "OutOfMemoryError", "ObjectLostError"))


def _translated(exc: BaseException, address: str) -> BaseException:
    """One of feedbench's errors, in one line, for what Ray's iterator raised: the cluster gone
    (naming it), a task's worker dead (not retried: max_retries=0) or a task raising (with its
    own error), or the error as it was."""
    if isinstance(exc, FeedbenchError):
        return exc
    cause = getattr(exc, "cause", None)
    if isinstance(cause, FeedbenchError):
        return cause
    names = {kind.__name__ for kind in type(exc).__mro__}
    if names & _CLUSTER_GONE or isinstance(exc, ConnectionError):
        return ray_cluster.failure(address, exc)
    if names & _WORKER_GONE:
        return LoaderError(f"the worker of a Ray task making batches in {ray_cluster.where(address)} died "
                           f"({described(exc)})")
    if cause is not None:
        return LoaderError(f"a Ray task making batches raised {_first_error(exc) or described(cause)}")
    return exc if isinstance(exc, Exception) else LoaderError(f"Ray's iterator raised {described(exc)}")


# "RuntimeError: message" lines of a remote traceback (Ray sends the task's as text).
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.*)$", re.MULTILINE)


def _first_error(exc: BaseException) -> str | None:
    """"Type: message" of the error a task raised first, from the traceback text Ray puts in
    its RayTaskError (whose own cause is Ray Data's "UDF failed to process a data block")."""
    found = _ERROR_LINE.findall(str(exc).split("The above exception was the direct cause")[0])
    if not found:
        return None
    name, message = found[-1]
    return f"{name.rpartition('.')[2]}: {message.strip()}"
