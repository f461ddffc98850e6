"""The Ray session of the ``ray`` backends (image and text): one per process, opened by a
loader's first pass and ended with the last loader that uses it.

- ``ray_address=""``: a local Ray instance started in this process (``ray.init(address="local",
  num_cpus=K)``; K = the first loader's tasks at once). Its GCS and raylet are children of this
  process and the tasks' worker processes the raylet's, so they inherit the CPUs a measured run
  is pinned to; Ray keeps those worker processes for later tasks (and epochs) until the session
  ends. It ends with ``ray.shutdown()``, which waits for every process it started, when its last
  loader is closed or collected, or at exit (before Ray's own exit hook: :func:`before_ray_exits`),
  once Ray Data's threads in this process have ended (:func:`settle`).
- an address (``host:port`` of a cluster's GCS, from a machine that is one of its nodes, or
  ``ray://host:port``, Ray Client, from anywhere): checked with a TCP connection first (an
  unreachable address is one ConfigError naming it within seconds; Ray itself retries for a
  minute and then ends the process), then joined; closing only disconnects.

Ray allows one session per process (a second ``ray.init`` raises): loaders of the same address
share it, counted; a loader of another address while it is open is a ConfigError naming both.
A session the caller opened (``ray.init`` before any loader) is used and left open. A session
with fewer CPUs than a loader's tasks is used as it is: the tasks beyond its CPUs wait for one
(a task pool larger than the cluster runs, checked on a local instance of 2 CPUs and 3 tasks).

Two facts of Ray that shape this module:

- It starts its processes with ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, which Linux ties to the
  *thread* that started them: started from the consumer loop's fetch thread, the local GCS
  was killed when that thread ended, and a minute later Ray ended the whole process ("Failed
  to connect to GCS within 60 seconds"). So the local instance is started from a thread of
  its own (``feedbench-ray``) that lives as long as the session.
- A driver whose cluster died is ended by Ray, not told: at once (exit status 1, nothing on
  the terminal) when one of its calls finds its node's raylet gone, and a minute later in any
  case ("Failed to connect to GCS within 60 seconds ... The program will terminate", even after
  ``ray.shutdown()``). :func:`watch` checks the address while a loader waits for a batch, and
  :func:`check_alive` before each pass calls Ray, so that the loader raises first, in one line
  naming the address, and an isolated run reports it before its process is ended (a kill timed
  while Ray moves a batch can still end the process first).

Ray's INFO lines, progress bars and worker output are kept off the terminal (:func:`quiet`).
Imports no framework: Ray is imported inside the functions that use it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from feedbench.pipelines.core import remote
from feedbench.pipelines.core.errors import ConfigError, DatasetError, described
from feedbench.pipelines.core.remote import check_reachable

log = logging.getLogger(__name__)

INSTALL = "the ray backend needs Ray Data: pip install 'feedbench[ray]'"
SCHEMES = ("ray",)
START_TIMEOUT_S = 120.0  # a local instance starts in 2-4 s on 2 cores; a join answers in seconds
# The local object store: Ray's default is 30% of memory, in /dev/shm; batches in flight need
# far less (a 64-image float batch of 224 px is 38 MB).
OBJECT_STORE_BYTES = 1 << 30
MIN_OBJECT_STORE_BYTES = 128 << 20
SETTLE_TIMEOUT_S = 10.0  # Ray Data's threads, after their passes were closed, end in well under a second
PASS_THREAD = "feedbench-ray-pass"  # the ray loader's thread of a pass (ray_loader._Pass)
USAGE_POLLER = "data-usage-metrics-poller"  # Ray Data's, started where usage stats are on (joining a cluster)


@contextlib.contextmanager
def _loggers_kept() -> Iterator[None]:
    """Keeps this process's loggers enabled across an import of Ray Data: its logging setup
    (``logging.config.dictConfig``) disables the loggers that exist when it runs, and then
    feedbench's warnings (a skipped image, a loader that ended) were lost."""
    enabled = [logger for logger in logging.root.manager.loggerDict.values()
               if isinstance(logger, logging.Logger) and not logger.disabled]
    try:
        yield
    finally:
        for logger in enabled:
            logger.disabled = False


def ray_installed() -> None:
    """Raises ConfigError, in one line, where Ray Data cannot be imported (the registry's machine check)."""
    try:
        with _loggers_kept():
            import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL) from None


def where(address: str) -> str:
    """How messages name the session's cluster."""
    return f"the Ray cluster at {address}" if address else "the local Ray instance"


def check_address(address: str) -> None:
    """ConfigError naming `address` unless something accepts a connection there (no-op for local)."""
    if address:
        check_reachable(address, "ray_address", SCHEMES, "the Ray cluster")


@dataclass
class _Session:
    """The process's Ray session: its address, the loaders using it and, for a local instance,
    the thread that started it (which must outlive it: see the module)."""

    address: str
    cpus: int | None  # a local instance's CPUs; None: a cluster's (Ray says)
    owned: bool  # opened here (ended here) or by the caller (left open)
    users: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


# Held while the session is opened, joined, left, or ended (until Ray has shut down, so that a
# loader joining meanwhile does not take the ending session for one of the caller's own).
# Reentrant: a loader collected while it is held leaves from the same thread.
_LOCK = threading.RLock()
_SESSION: _Session | None = None


def join(address: str, tasks: int) -> None:
    """Opens the session for a loader of `address` with `tasks` Ray tasks of one CPU at once (a
    local instance gets that many CPUs), or joins the open one (one more user).

    Raises:
        ConfigError: Ray Data missing; `address` unreachable or other than the open session's.
        DatasetError: Ray failed to start or to connect, naming the address.
    """
    global _SESSION
    ray_installed()
    import ray

    with _LOCK:
        session = _SESSION
        if session is None and ray.is_initialized():  # the caller's own session
            session = _Session(address, None, owned=False)
        if session is None:
            check_address(address)
            session = _Session(address, tasks if not address else None, owned=True)
            _open(session)
        elif session.address != address:
            raise ConfigError(f"ray_address {address!r}: this process is already in {where(session.address)} "
                              "(Ray allows one session per process); close its loaders first")
        _SESSION = session
        session.users += 1


def leave(address: str) -> None:
    """One user of the session less; the last one ends it (a local instance stops, with every
    process it started; a cluster is disconnected from and keeps running)."""
    global _SESSION
    if threading.current_thread() in ray_data_threads():  # collected there: it cannot wait for itself
        threading.Thread(target=leave, args=(address,), name="feedbench-ray-leave").start()
        return
    with _LOCK:
        session = _SESSION
        if session is None or session.address != address:
            return
        session.users -= 1
        if session.users > 0:
            return
        _SESSION = None
        if session.owned:
            _close(session)


def _open(session: _Session) -> None:
    """Starts the local instance (from its own thread) or connects to the cluster."""
    quiet()
    _no_auto_init()
    answer: queue.SimpleQueue = queue.SimpleQueue()

    def keep() -> None:
        import ray

        try:
            _init(session)
        except Exception as exc:  # noqa: BLE001 - handed to join(), which raises it in one line
            answer.put(exc)
            return
        if session.stop.is_set():  # join() gave up waiting: leave no half-open session behind
            ray.shutdown()
            return
        answer.put(None)
        session.stop.wait()  # the local instance's processes die with this thread

    threading.Thread(target=keep, name="feedbench-ray", daemon=True).start()
    try:
        failed = answer.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        session.stop.set()
        raise DatasetError(f"{where(session.address)} did not start or answer within {START_TIMEOUT_S:g} s") from None
    if failed is not None:
        session.stop.set()
        if _caused_by(failed, "AuthenticationError"):
            raise ConfigError(f"{where(session.address)} refused this process's token (the cluster uses token "
                              "authentication): set RAY_AUTH_MODE=token and give its token (~/.ray/auth_token, "
                              "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)") from failed
        raise DatasetError(f"{where(session.address)} could not be used: {described(failed)}") from failed
    quiet()  # Ray Data configures its loggers when first imported
    before_ray_exits(_close_at_exit)


def before_ray_exits(hook: Callable[[], None]) -> None:
    """Runs `hook` at exit before Ray's own exit hook, which shuts Ray down without waiting for
    Ray Data's threads (:func:`settle`): Ray registers it when first imported, and exit hooks
    run the last registered first, so `hook` is registered (again) now, Ray being imported."""
    atexit.unregister(hook)
    atexit.register(hook)


def _no_auto_init() -> None:
    """Turns off Ray's automatic ``ray.init()`` in this process: a Ray Data thread left waiting on
    a cluster that died called a Ray API after the session was gone, and Ray started a new
    session for it (a local instance, or a minute of retries against the dead address, with
    Ray's logging set up anew on the terminal). Ray reads RAY_ENABLE_AUTO_CONNECT once, when
    imported, into this flag."""
    from ray._private import auto_init_hook

    auto_init_hook.enable_auto_connect = False


def _caused_by(exc: BaseException | None, name: str) -> bool:
    """Whether `exc` or an exception it was raised from is of a class called `name`."""
    seen = 0
    while exc is not None and seen < 16:
        if type(exc).__name__ == name:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _init(session: _Session) -> None:
    import ray

    common = dict(log_to_driver=False, configure_logging=False, logging_level=logging.ERROR)
    if session.address:
        ray.init(address=session.address, **common)
    else:
        ray.init(address="local", num_cpus=session.cpus, include_dashboard=False,
                 object_store_memory=object_store_bytes(), **common)


def object_store_bytes() -> int:
    """The local object store: OBJECT_STORE_BYTES, or half of what /dev/shm has free where that
    is less (a container's /dev/shm is often 64 MB: Ray then falls back to /tmp, slower)."""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return OBJECT_STORE_BYTES
    return max(MIN_OBJECT_STORE_BYTES, min(OBJECT_STORE_BYTES, free // 2))


def ray_data_threads() -> list[threading.Thread]:
    """This process's threads of Ray Data's passes (its streaming executor, an iterator's block
    prefetcher and batch-making threads, the metadata fetcher) and of the ray loader's
    (PASS_THREAD): a thread of Ray Data's modules or running a function of them, but for its
    usage poller, which lives as long as the process and makes no Ray call once Ray is down."""
    found = []
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)  # a Thread's function, until run() ends
        module = getattr(target, "__module__", None) or type(thread).__module__
        if (module.startswith("ray.data") and thread.name != USAGE_POLLER) or thread.name == PASS_THREAD:
            found.append(thread)
    return found


def settle(timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Waits, up to `timeout_s` in all, for the threads of :func:`ray_data_threads` to end (but
    the calling one), so that none calls Ray after ``ray.shutdown()``: Ray ends the whole
    process then (exit status 1, "The core worker has already been shutdown ... The process will
    exit"). A pass's threads end within 0.1 s of its iterator being closed, or when the block
    they are fetching arrives. The block prefetcher of a pass left before its end waits for
    work until it is stopped (Ray Data stops it only at a pass's end, and the thread holds it,
    so it is never collected): the background workers that have a ``stop()`` are stopped first."""
    deadline = time.monotonic() + timeout_s
    waiting = [thread for thread in ray_data_threads() if thread is not threading.current_thread()]
    for thread in waiting:
        stop = getattr(getattr(getattr(thread, "_target", None), "__self__", None), "stop", None)
        if callable(stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - a worker that cannot be stopped is waited for, as the others
                log.debug("stopping %s", thread.name, exc_info=True)
    for thread in waiting:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [thread.name for thread in waiting if thread.is_alive()]
    if left:
        log.debug("Ray Data threads still running after %g s: %s", timeout_s, ", ".join(left))


def _close(session: _Session) -> None:
    import ray

    try:
        settle()
        ray.shutdown(wait_for_processes=not session.address)
    finally:
        session.stop.set()


@atexit.register
def _close_at_exit() -> None:
    """Ends the session at exit, whatever holds loaders still (Ray's own exit hook ends its
    processes too, without waiting for them)."""
    global _SESSION
    with _LOCK:
        session, _SESSION = _SESSION, None
        if session is not None and session.owned:
            _close(session)


def quiet() -> None:
    """Keeps Ray off the terminal: Ray's own loggers at CRITICAL (its notice of token
    authentication, its warnings about threads), Ray Data's console output at CRITICAL too (the
    INFO lines of each execution, the warning that progress bars are off, the stack traces its
    threads log when their cluster is gone; its log file in the session's folder keeps them),
    no progress bars, no execution plan printed. The worker processes' output stays in the
    session's log files (``log_to_driver=False``). Errors that matter reach the caller as
    feedbench's own, in one line."""
    try:
        with _loggers_kept():
            from ray.data import DataContext  # first: importing Ray Data sets the "ray" logger to INFO
    except ImportError:
        return
    logging.getLogger("ray").setLevel(logging.CRITICAL)
    for handler in logging.getLogger("ray.data").handlers:  # set by Ray Data when first imported
        # Ray's own console handlers only: one that is not Ray's (a caller's, pytest's capture) is
        # not this module's to silence.
        if type(handler).__module__.startswith("ray.") and type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.CRITICAL)
    with warnings.catch_warnings():  # Ray 2.60's DataContext sets its own deprecated fields when made
        warnings.simplefilter("ignore", DeprecationWarning)
        context = DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False


def failure(address: str, exc: BaseException) -> DatasetError:
    """The one-line error for a session that stopped answering mid-run."""
    return DatasetError(f"{where(address)} stopped answering: {described(exc)}")


def watch(address: str, wait: Callable[[float], Any], every_s: float = 0.5) -> Any:
    """``wait(every_s)`` until it answers (it raises queue.Empty while nothing came), checking
    between calls that a cluster's address still takes connections: DatasetError naming it when
    it does not (a local instance is not checked: it lives and dies with this process).

    Ray ends a driver whose node's raylet died as soon as one of its calls touches the object
    store ("The connection to the plasma store is failed. Terminate the process": exit status 1,
    nothing on the terminal); a driver that only waits on tasks of a cluster that died is left
    waiting. So
    the consumer waits here, and :func:`check_alive` runs before each pass's first call to Ray."""
    while True:
        try:
            return wait(every_s)
        except queue.Empty:
            check_alive(address)


def check_alive(address: str) -> None:
    """DatasetError naming `address` when the cluster there stopped taking connections (no-op for local)."""
    reason = unreachable(address) if address else None
    if reason:
        raise DatasetError(f"{where(address)} stopped answering ({reason})")


def unreachable(address: str, timeout_s: float = 1.0) -> str | None:
    """Why nothing accepts a connection at `address` now, or None when something does."""
    return remote.unreachable(address, "ray_address", SCHEMES, timeout_s)
