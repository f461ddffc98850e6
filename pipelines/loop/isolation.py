"""One measured run in a fresh spawned subprocess, optionally held to K CPUs.

TensorFlow's thread pools and a forked DataLoader worker do not mix, memory figures must
not leak between runs, and one crashed run must not end a sweep: every measured run of a
comparison executes through :func:`run_isolated`. A crash, an out-of-memory kill or a
timeout in the child comes back as a failed RunResult carrying the reason.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from feedbench.pipelines.core.errors import ConfigError, described
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.result import RunResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """Everything one isolated run needs, picklable.

    Attributes:
        loader: A picklable zero-argument callable that builds the loader in the child
            (e.g. ``functools.partial(feedbench.vision.torch_loader, path, workers=4)``).
        measure: How the run is measured, its CPU budget (``cpus``) and time limit
            (``limit_s``) included.
        config: The loader's configuration, recorded in the result.
    """

    loader: Callable[[], Iterable[Any]]
    measure: MeasureConfig = MeasureConfig()
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.loader):
            raise ConfigError(f"RunSpec.loader must be a zero-argument callable, got {type(self.loader).__name__}")
        if not isinstance(self.measure, MeasureConfig):
            raise ConfigError(f"RunSpec.measure must be a MeasureConfig, got {type(self.measure).__name__}")

    def recorded(self) -> dict[str, Any]:
        """The settings that go into the result's config."""
        return {**self.measure.to_dict(), "isolated": True, "loader": _name(self.loader), **dict(self.config)}


def _name(loader: Callable[..., Any]) -> str:
    func = getattr(loader, "func", loader)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"


def _child(spec: RunSpec, conn: Any) -> None:
    """The subprocess: pin, build the loader, measure, send the result as a dict, and only then
    let the loader go: what ends with it (a service, a Ray instance) cannot lose the figure."""
    os.setpgid(0, 0)  # its own process group, so that the parent can end all it started
    config = spec.recorded()
    loader = None
    try:
        from feedbench.pipelines.loop.measure import measure_with

        ids = _pin(spec.measure.cpus)  # inherited by the loader's workers
        if ids is not None:
            config["cpu_ids"] = ids
        loader = spec.loader()
        result = measure_with(loader, spec.measure, config)
    except Exception as exc:  # the parent gets a failed result, not a traceback
        log.debug("isolated run failed", exc_info=True)
        result = RunResult.failed(described(exc), config=config)
    conn.send(result.to_dict())
    conn.close()
    del loader


def _reason(exitcode: int | None, limit_s: float, timed_out: bool) -> str:
    if timed_out:
        return f"timed out: no result within {limit_s:g} s; the run and its workers were killed"
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the run's process was killed by {name}{hint} before it reported"
    return f"the run's process exited with status {exitcode} before it reported"


def _kill_group(pid: int) -> None:
    """Kills the run's process group: what it started, even after the run itself died."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        processes = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        _kill_group(pid)
        return
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=10)


def run_isolated(spec: RunSpec) -> RunResult:
    """Runs one measured run in a fresh spawned subprocess and returns its RunResult.

    Raises ConfigError only when the spec cannot be sent to the child (an unpicklable
    loader factory, such as a lambda). Never raises for what happens in the child: a crash, a
    kill (the out-of-memory killer sends SIGKILL) or a run past ``spec.measure.limit_s`` becomes
    ``RunResult.failed`` with the reason, and the child's whole process tree is gone when this
    returns.
    """
    data, exitcode, timed_out = _spawned(_child, spec, spec.measure.limit_s, "feedbench-run",
                                         f"RunSpec.loader {_name(spec.loader)} cannot be sent to a spawned run")
    if data is not None:
        return RunResult.from_dict(data)
    return RunResult.failed(_reason(exitcode, spec.measure.limit_s, timed_out), config=spec.recorded())


def _spawned(target: Callable[..., None], payload: Any, limit_s: float, name: str,
             unsendable: str) -> tuple[Any, int | None, bool]:
    """Runs ``target(payload, conn)`` in a fresh spawned process and waits up to `limit_s` for
    what it sends: (that, its exit code, whether it timed out). The process's whole tree is gone
    when this returns. ConfigError (`unsendable`: why) when `payload` cannot be pickled."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Not daemonic: a run's DataLoader starts worker processes of its own.
    process = context.Process(target=target, args=(payload, sender), name=name)
    try:
        process.start()  # pickles the payload here, in the parent
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        receiver.close()
        sender.close()
        raise ConfigError(f"{unsendable}: {exc}") from exc
    sender.close()
    data, timed_out = None, False
    try:
        if receiver.poll(limit_s):
            data = receiver.recv()
        else:
            timed_out = True
    except (EOFError, OSError):
        data = None  # the child died: its exit code says how
    finally:
        receiver.close()
    if timed_out:
        _kill_tree(process.pid)
    # The pipe closes a moment before the exit status exists: wait for it, do not guess.
    process.join(30)
    if process.is_alive():
        _kill_tree(process.pid)
    _kill_group(process.pid)  # workers of a run that crashed were left without a parent
    return data, process.exitcode, timed_out


def _pin(cpus: int | None) -> list[int] | None:
    """Pins this process (and what it starts) to the first `cpus` usable CPUs, with the thread
    pools of torch, TensorFlow and OpenMP sized to them (read when they start); returns their ids."""
    if cpus is None:
        return None
    ids = usable_cpus()[:cpus]
    os.sched_setaffinity(0, ids)
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(cpus)
    import torch

    torch.set_num_threads(cpus)
    return ids


def _call_child(call: tuple[Callable[[], Any], int | None], conn: Any) -> None:
    os.setpgid(0, 0)
    func, cpus = call
    try:
        _pin(cpus)
        reply = ("ok", func())
    except Exception as exc:  # the parent gets the reason in one line, not a traceback
        log.debug("isolated call failed", exc_info=True)
        reply = ("error", described(exc))
    conn.send(reply)
    conn.close()


def call_isolated(func: Callable[[], Any], *, cpus: int | None = None,
                  limit_s: float = 600.0) -> tuple[Any, str | None]:
    """Calls `func` (picklable, no arguments, returning picklable data) in a fresh spawned
    process pinned to `cpus` CPUs, as :func:`run_isolated` runs a measurement: (its value,
    None), or (None, the reason in one line) when it raised, crashed or took over `limit_s`;
    the process and all it started are gone when this returns."""
    reply, exitcode, timed_out = _spawned(_call_child, (func, cpus), limit_s, "feedbench-call",
                                          f"{_name(func)} cannot be sent to a spawned process")
    if reply is None:
        return None, _reason(exitcode, limit_s, timed_out)
    kind, value = reply
    return (value, None) if kind == "ok" else (None, value)
