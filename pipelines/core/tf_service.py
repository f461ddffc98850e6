"""A tf.data service on this machine: a dispatcher and K worker processes, started and ended by
the ``tf-service`` loaders (and by ``feedbench service`` for a service other machines use).

- The dispatcher (``tf.data.experimental.service.DispatchServer``) runs in the process that
  starts it, on a port of its own choosing; it only deals out work, and costs little.
- Each worker is a process of its own (``python -m feedbench.pipelines.core.tf_service
  worker``) holding one ``WorkerServer``: it receives the pipeline's graph from the dispatcher
  and runs it. It inherits the starter's CPU affinity (a measured run's budget) and process
  group (which the harness kills when a run ends), hides the GPU from TensorFlow, and ends
  itself when the process that started it is gone.
- A worker tells its parent it is serving by one line on its standard output; its log goes
  to a file whose last line is the reason given when it dies.

Imports TensorFlow only when a service starts.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import DatasetError, LoaderError, how_it_ended
from feedbench.pipelines.core.remote import check_reachable, unreachable
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.pipelines.core.threads import thread_count

log = logging.getLogger(__name__)

READY = "feedbench tf.data service worker ready"
START_TIMEOUT_S = 120.0
TASK_REFRESH_MS = 100  # a worker imports TensorFlow first: seconds on a busy machine


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class LocalService:
    """A dispatcher in this process and `workers` worker processes (see the module).

    :meth:`start` starts them and waits until every worker serves; :meth:`close` ends them
    (also at garbage collection and at exit). :attr:`address` is ``grpc://localhost:PORT``.
    """

    def __init__(self, workers: int, *, port: int = 0, host: str = "localhost") -> None:
        self.count, self.port, self.host = max(1, int(workers)), port, host
        self.dispatcher: Any = None
        self.workers: list[subprocess.Popen[str]] = []
        self._logs = tempfile.TemporaryDirectory(prefix="feedbench-tf-service-")
        self._lock = threading.RLock()  # close() runs inside start() when a worker fails to start

    @property
    def address(self) -> str:
        return f"grpc://{self.host}:{self.dispatcher_port}"

    @property
    def dispatcher_port(self) -> int:
        return int(self.dispatcher.target.rsplit(":", 1)[1])

    def start(self) -> LocalService:
        from feedbench.pipelines.core.frameworks import import_tensorflow

        tf = import_tensorflow()
        with self._lock:
            if self.dispatcher is not None:
                return self
            config = tf.data.experimental.service.DispatcherConfig(port=self.port)
            try:
                self.dispatcher = tf.data.experimental.service.DispatchServer(config)
            except (tf.errors.OpError, RuntimeError) as exc:
                message = getattr(exc, "message", str(exc)).strip().splitlines() or [type(exc).__name__]
                raise LoaderError(f"a tf.data service dispatcher cannot start on port {self.port}: "
                                  f"{message[0]}") from None
            _OPEN.add(self)
            for k in range(self.count):
                self.workers.append(self._start_worker(k))
            self._wait_ready()
        return self

    def _start_worker(self, k: int) -> subprocess.Popen[str]:
        # One intra-op thread, as a DataLoader worker has (a measured run's environment holds its
        # CPU budget, which the worker would inherit).
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "1", "TF_NUM_INTRAOP_THREADS": "1",
               "OMP_NUM_THREADS": "1"}
        logfile = Path(self._logs.name) / f"worker-{k}.log"
        with open(logfile, "w") as stderr:
            return subprocess.Popen(
                [sys.executable, "-m", "feedbench.pipelines.core.tf_service", "worker",
                 "--dispatcher", f"localhost:{self.dispatcher_port}", "--parent", str(os.getpid()),
                 "--host", self.host],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = dict(enumerate(self.workers))
        while waiting:
            for k, process in list(waiting.items()):
                if process.poll() is not None:
                    problem = self.worker_problem(k)
                    self.close()
                    raise LoaderError(f"the local tf.data service could not start: {problem}")
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise LoaderError(f"the local tf.data service could not start: {len(waiting)} of its "
                                  f"{self.count} worker(s) did not serve within {START_TIMEOUT_S:g} s")
            ready, _, _ = select.select([p.stdout for p in waiting.values()], [], [], min(left, 0.5))
            for k, process in list(waiting.items()):
                if process.stdout in ready and READY in (process.stdout.readline() or ""):
                    del waiting[k]

    def worker_problem(self, k: int) -> str:
        """Why worker `k` ended ("" while it runs)."""
        code = self.workers[k].poll()
        if code is None:
            return ""
        last = _last_line(Path(self._logs.name) / f"worker-{k}.log")
        return f"worker {k} (pid {self.workers[k].pid}) {how_it_ended(code)}" + (f": {last}" if last else "")

    def problem(self) -> str:
        """Why the service cannot serve ("" while every worker runs)."""
        found = [self.worker_problem(k) for k in range(len(self.workers))]
        return "; ".join(problem for problem in found if problem)

    def close(self) -> None:
        """Ends the workers (SIGTERM, then SIGKILL after 5 s) and the dispatcher."""
        with self._lock:
            workers, self.workers = self.workers, []
            for process in workers:
                if process.poll() is None:
                    process.terminate()
            for process in workers:
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stdout:
                    process.stdout.close()
            if self.dispatcher is not None:
                self.dispatcher._stop()  # no public stop: this is what its __del__ calls
                self.dispatcher = None
            _OPEN.discard(self)
        self._logs.cleanup()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  # an interpreter going down: nothing left to tell
            return


_OPEN: weakref.WeakSet[LocalService] = weakref.WeakSet()  # services with processes running


@atexit.register
def _close_all() -> None:
    for service in list(_OPEN):
        service.close()


def service_workers(workers: int | str) -> int:
    """Worker processes a local service starts for a config's `workers`: "autotune" is one per
    usable CPU, 0 is one (a service cannot run without a worker)."""
    return max(1, thread_count(workers))


def _one_worker_each(tf: Any, batches: Any) -> Any:
    """`batches` as each service worker is to run them: one sample at a time on one thread, as a
    DataLoader worker makes its batches (tf.data's default rewrites would make the plain map a
    parallel one, on a pool as large as the worker's CPUs)."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.experimental_optimization.map_parallelization = False
    return batches.with_options(options)


class ServiceLoader:
    """Batches of a tf.data pipeline made on tf.data service workers: each ``iter()`` is the
    next epoch, a new job of ``distribute(processing_mode, service)`` over ``batches(epoch)``
    (0 first), prefetched in this process.

    `batches` gives an epoch's graph up to its batches, as the workers run it (no Python in
    it: they are other processes), seeded for that epoch (a job starts its graph's random
    streams anew, where one tf.data pipeline's go on from epoch to epoch).

    With ``cfg.service`` empty a :class:`LocalService` of ``service_workers(cfg.workers)``
    workers is started on the first ``iter()`` (so that its start counts in the time to the
    first batch, as a DataLoader's workers' does) and ended by :meth:`close`; with an address,
    that dispatcher is checked to answer and used as it is. Each job's graph holds the file
    list (or corpus): this process grows by about its size an epoch, as it did when every
    epoch distributed the same graph (measured: 96 MB held in a graph, 5 epochs, 100-200 MB
    more RSS an epoch either way).
    """

    def __init__(self, batches: Callable[[int], Any], stats: Callable[[], LoaderStats], cfg: Any) -> None:
        self.batches, self._stats, self.config = batches, stats, cfg
        self.service: LocalService | None = None
        self.epoch = 0  # of the next iter()

    @property
    def address(self) -> str:
        """The dispatcher's address (a local service's once started)."""
        if self.config.service:
            return str(self.config.service)
        return self.service.address if self.service else "(a local service, not started)"

    def _dispatcher(self) -> str:
        if self.config.service:
            check_reachable(self.config.service, "service", ("grpc",), "the tf.data service dispatcher")
            return str(self.config.service)
        if self.service is None or self.service.dispatcher is None:
            self.service = LocalService(service_workers(self.config.workers)).start()
        problem = self.service.problem()
        if problem:
            raise LoaderError(f"the local tf.data service at {self.service.address} lost a worker: {problem}")
        return self.service.address

    def _dataset(self, epoch: int) -> Any:
        from feedbench.pipelines.core.frameworks import import_tensorflow, private_threads

        tf = import_tensorflow()
        address = self._dispatcher()
        # The private form of distribute() takes how often the client asks the dispatcher for
        # its tasks: 1 s by default, which every epoch (a new job) waited for before its first
        # batch (1.03 s an epoch of 8 small batches here, 0.22 s at 100 ms).
        from tensorflow.python.data.experimental.ops import data_service_ops

        dataset = _one_worker_each(tf, self.batches(epoch)).apply(data_service_ops._distribute(
            processing_mode=self.config.processing_mode, service=address,
            task_refresh_interval_hint_ms=TASK_REFRESH_MS,
            compression="AUTO" if self.config.service else None))
        prefetch = self.config.prefetch
        if prefetch != 0:
            dataset = dataset.prefetch(tf.data.AUTOTUNE if prefetch == AUTOTUNE else prefetch)
        return private_threads(dataset, 0, prefetch)[0]

    def __iter__(self) -> Iterator[Any]:
        dataset = self._dataset(self.epoch)
        self.epoch += 1
        return self._named(iter(dataset))

    def _named(self, batches: Iterator[Any]) -> Iterator[Any]:
        from feedbench.pipelines.core.frameworks import import_tensorflow

        tf = import_tensorflow()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except tf.errors.OpError as exc:
                reason = self.stall_reason() or (exc.message.strip().splitlines() or [type(exc).__name__])[0]
                raise DatasetError(f"the tf.data service at {self.address}: {reason}") from None
            yield batch

    def stall_reason(self) -> str:
        """Why no batch comes ("" when nothing is known to be wrong): a dead local worker, or a
        dispatcher that no longer answers."""
        if self.service is not None and self.service.dispatcher is not None:
            return self.service.problem()
        reason = unreachable(self.config.service, "service", ("grpc",), 2.0) if self.config.service else None
        return f"the tf.data service dispatcher at {self.config.service} cannot be reached ({reason})" if reason else ""

    def loader_stats(self) -> LoaderStats:
        import dataclasses

        workers: int | str = "remote" if self.config.service else service_workers(self.config.workers)
        # Made ahead: the client's buffer, and a batch in the making or in flight per worker.
        buffer = 2 if self.config.prefetch == AUTOTUNE else int(self.config.prefetch)
        ahead = None if self.config.service else int(workers) + buffer
        return dataclasses.replace(self._stats(), batches_ahead=ahead,
                                   threads=(("tf.data service workers", workers),
                                            ("client prefetch buffer", self.config.prefetch)))

    def close(self) -> None:
        """Ends a local service (a remote one is left as it is)."""
        service, self.service = self.service, None
        if service is not None:
            service.close()


def _worker(dispatcher: str, parent: int, port: int, host: str) -> None:
    """One worker process: serves until its parent is gone or it is told to stop. Clients
    fetch from it at `host` (the name other machines reach it by)."""
    import tensorflow as tf  # alone in this process: no torch to load first

    config = tf.data.experimental.service.WorkerConfig(dispatcher_address=dispatcher, port=port,
                                                       worker_address=f"{host}:%port%")
    server = tf.data.experimental.service.WorkerServer(config)
    sys.stdout.write(f"{READY} on port {server._address.rsplit(':', 1)[-1]}\n")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        if parent and os.getppid() != parent:
            break  # the process that started this one is gone
    server._stop()


def serve(workers: int, port: int, host: str, ready: Callable[[str], None]) -> None:
    """Runs a dispatcher on `port` (0: any free one) and `workers` worker processes until
    SIGTERM or SIGINT, for clients that reach this machine as `host`; calls `ready` with the
    dispatcher's address once every worker serves."""
    service = LocalService(workers, port=port, host=host).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        ready(service.address)
        while not stop.wait(1.0):
            problem = service.problem()
            if problem:
                raise LoaderError(f"the tf.data service at {service.address} lost a worker: {problem}")
    finally:
        service.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m feedbench.pipelines.core.tf_service")
    sub = parser.add_subparsers(dest="role", required=True)
    both = sub.add_parser("serve", help="a dispatcher and its workers, until stopped")
    both.add_argument("--workers", type=int, default=1)
    both.add_argument("--port", type=int, default=0)
    both.add_argument("--host", default="localhost")
    worker = sub.add_parser("worker", help="one tf.data service worker")
    worker.add_argument("--dispatcher", required=True, help="host:port of the dispatcher")
    worker.add_argument("--parent", type=int, default=0, help="end when this process is gone (0: never)")
    worker.add_argument("--port", type=int, default=0, help="the worker's port (0: any free one)")
    worker.add_argument("--host", default="localhost", help="the name clients reach this machine by")
    args = parser.parse_args(argv)
    if args.role == "serve":
        serve(args.workers, args.port, args.host, lambda address: print(f"serving at {address}", flush=True))  # noqa: T201
        return
    _worker(args.dispatcher, args.parent, args.port, args.host)


if __name__ == "__main__":
    main()
