"""The DataLoader settings both torch pipelines (image and text) share: one place that says
what `workers` and `prefetch` mean for a DataLoader, so that the two cannot drift apart, and
how its worker processes start.

Workers start from a fork server that has imported what they need once (torch, torchvision,
the pipeline's module): each worker is a fork of it, ready in milliseconds, sharing those
pages. Spawned workers each imported torch and torchvision (about 5.5 s here), one after
another, while the parent wrote each a pickle bigger than a pipe holds: time to the first
batch grew with the workers (6.4 s at 1, 12.1 s at 2, 27.0 s at 4 on 2 cores), and a worker
that died while starting left the parent blocked in that write. A fork server, not a plain
fork: the loop starts workers from its fetch thread while other threads run, and a fork
would copy their locks (and TensorFlow's thread pools); the server is a fresh interpreter
that has run nothing but those imports.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import LoaderError, described, how_it_ended
from feedbench.pipelines.core.machine import usable_cpus


def worker_context(preload: Sequence[str]) -> Any:
    """The multiprocessing context DataLoader workers start from: a fork server that imports
    `preload` once, when the first worker starts (later calls cannot change what it has)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


def dataloader_options(workers: int | str, prefetch: int | str, preload: Sequence[str] = ("torch",)) -> dict[str, Any]:
    """DataLoader keywords for a config's `workers` and `prefetch`.

    "autotune" workers means one process per core this process may use (torch has no
    autotuning), "autotune" prefetch means 2; prefetch 0 becomes 1 per worker (a DataLoader
    cannot prefetch less); 0 workers loads in the calling process. Workers start from a fork
    server that imported `preload` (the modules they need: the pipeline's own, and what it
    imports).
    """
    import torch

    count = len(usable_cpus()) if workers == AUTOTUNE else int(workers)
    depth = 2 if prefetch == AUTOTUNE else int(prefetch)
    return {
        "num_workers": count,
        "prefetch_factor": max(1, depth) if count else None,
        "persistent_workers": count > 0,
        "pin_memory": torch.cuda.is_available(),
        # No timeout of the DataLoader's own: with one, it looks for dead workers only when the
        # timeout ends (a worker that died while starting cost the whole timeout); without,
        # it looks every 5 s. A stalled live worker is the consumer loop's timeout to catch.
        "timeout": 0,
        "multiprocessing_context": worker_context(preload) if count else None,
    }


class DeviceAwareLoader:
    """What feedbench's DataLoaders (image and text) add to ``torch.utils.data.DataLoader``, as a
    mixin: they pin memory only when the run's device is CUDA (``use_device``, which the consumer
    loop calls before the first batch; pinning for a CPU run is a copy for nothing), and they say
    which threads each mode runs."""

    num_workers: int
    pin_memory: bool

    def __iter__(self) -> Iterator[Any]:
        """The DataLoader's batches; a worker process that died is one LoaderError naming it
        (pid, exit status or signal) and what to check, not a RuntimeError or a
        ConnectionResetError from deep in multiprocessing."""
        try:
            batches = super().__iter__()  # type: ignore[misc]
            _keep_queues(batches)
            yield from batches
        except (RuntimeError, ConnectionError, EOFError) as exc:
            dead = _dead_workers(self)
            if not dead and isinstance(exc, RuntimeError) and "exited unexpectedly" not in str(exc):
                self.end_workers()
                raise
            _abandon(self)
            raise LoaderError(f"DataLoader worker process {', '.join(dead) or 'unknown'} died "
                              f"({described(exc)}); its own error, if it printed one, is "
                              "above on stderr. A script that starts workers needs an `if __name__ == "
                              "\"__main__\":` guard and cannot run from standard input.") from exc
        except Exception:
            self.end_workers()
            raise

    def end_workers(self) -> None:
        """Ends the worker processes of the pass under way now, for a pass that raised (the next
        ``iter()`` starts new ones). Left to the garbage collector, the iterator's own shutdown
        waits 5 s for each worker: an exception's traceback puts the iterator in a reference
        cycle, and the collector runs its queues' finalizers first, which stop the threads that
        would have told the workers to stop (a stall of 10 s, in whatever thread collected it)."""
        iterator = getattr(self, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            self._iterator = None
            iterator._shutdown_workers()

    def use_device(self, device_type: str) -> None:
        import torch

        self.pin_memory = device_type == "cuda" and torch.cuda.is_available()

    def thread_roles(self) -> tuple[tuple[str, int], ...]:
        """(role, threads): the main process's intra-op threads (which decode and transform at
        workers=0), and one intra-op thread in each worker process (the DataLoader sets it)."""
        import torch

        roles = [("main process intra-op", torch.get_num_threads())]
        if self.num_workers:
            roles.append(("intra-op per worker process", 1))
        return tuple(roles)


# The queues of each live DataLoader iterator with workers, by id(iterator) (see _keep_queues).
_QUEUES: dict[int, list[Any]] = {}


def _keep_queues(iterator: Any) -> None:
    """Holds the queues of `iterator` while it lives, so that its own shutdown can still tell
    its workers to stop when the garbage collector finds it in a reference cycle (a loader held
    by an exception's traceback, or by an object of its user's that refers to itself).

    The collector runs weak-reference callbacks before ``__del__`` methods: a queue's finalizer
    (multiprocessing's, a weak-reference callback) stopped the thread that feeds its pipe, so the
    stop the iterator's ``__del__`` then put on each worker's queue never left this process, and
    it waited 5 s for each worker before terminating it: a stall of 10 s at 2 workers, in
    whatever thread the collector ran, a measurement's included. Held here, the queues are not
    garbage while the iterator is collected; the iterator's own weak-reference callback lets them
    go, and they are freed after its ``__del__``, when the collector clears it."""
    key = id(iterator)
    queues = [*getattr(iterator, "_index_queues", ()), getattr(iterator, "_worker_result_queue", None)]
    if key in _QUEUES or queues == [None]:
        return
    _QUEUES[key] = queues
    weakref.finalize(iterator, _QUEUES.pop, key, None)


def _abandon(loader: Any) -> None:
    """Ends the iterator of `loader` after one of its workers died, without the iterator's own
    shutdown: that sets an Event whose lock a worker killed inside it still holds, and waits for
    ever (it hung the test of a killed worker, in one full run of the suite). The DataLoader's
    guard against it is a SIGCHLD handler, and a fork server's workers are not children of this
    process, so the guard never fires. The live workers are killed, the queues closed, the pids
    let go; the next ``iter()`` starts new workers."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is None or getattr(iterator, "_shutdown", True):
        return
    iterator._shutdown = True  # its __del__ then does nothing
    try:
        if hasattr(iterator, "_pin_memory_thread"):
            iterator._pin_memory_thread_done_event.set()  # a threading.Event: no lock shared with workers
            iterator._pin_memory_thread.join(timeout=10)
        workers = list(getattr(iterator, "_workers", []))
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        for worker in workers:
            worker.join(timeout=5)
        for queue in [*getattr(iterator, "_index_queues", []), iterator._worker_result_queue]:
            queue.cancel_join_thread()
            queue.close()
    finally:
        if getattr(iterator, "_worker_pids_set", False):
            from torch.utils.data._utils import signal_handling

            signal_handling._remove_worker_pids(id(iterator))
            iterator._worker_pids_set = False
        loader._iterator = None


def _dead_workers(loader: Any) -> list[str]:
    """"pid 123 (killed by SIGKILL)" for each worker process of `loader`'s iterator that ended."""
    iterator = getattr(loader, "_iterator", None)  # the DataLoader's own, kept with persistent workers
    workers = list(getattr(iterator, "_workers", []))
    # A fork server's child reports its end through the server: give the news a moment to come.
    multiprocessing.connection.wait([w.sentinel for w in workers], timeout=2.0)
    found = []
    for worker in workers:
        code = worker.exitcode
        if code is None:
            continue
        found.append(f"pid {worker.pid} ({how_it_ended(code)})")
    return found

