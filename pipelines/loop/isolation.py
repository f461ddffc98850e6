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
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
from feedbench.pipelines.core.errors import ConfigError, one_line
from feedbench.pipelines.loop.result import RunResult

log = logging.getLogger(__name__)


def available_cpus() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


@dataclass(frozen=True)
class RunSpec:
    """Everything one isolated run needs, picklable.

    Attributes:
        loader: A picklable zero-argument callable that builds the loader in the child
            (e.g. ``functools.partial(feedbench.vision.torch_loader, path, workers=4)``).
        workload: A workload name, or a picklable Workload.
        device: "auto", "cpu", "cuda" or "cuda:N".
        steps: Measured steps (see ``measure``).
        seconds: Measured seconds (see ``measure``).
        warmup: Warm-up steps.
        timeout: Seconds ``measure`` waits for any one batch.
        cpus: Pin the child and its workers to this many CPUs; None for all.
        limit_s: Seconds the whole child may take, start-up included, before it is killed.
        config: The loader's configuration, recorded in the result.
    """

    loader: Callable[[], Iterable[Any]]
    workload: Any = "emulated:20ms"
    device: str = "auto"
    steps: int | None = None
    seconds: float | None = None
    warmup: int = 5
    timeout: float = 120.0
    cpus: int | None = None
    limit_s: float = 600.0
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.loader):
            raise ConfigError(f"RunSpec.loader must be a zero-argument callable, got {type(self.loader).__name__}")
        if self.cpus is not None:
            have = len(available_cpus())
            if isinstance(self.cpus, bool) or not isinstance(self.cpus, int) or not 1 <= self.cpus <= have:
                raise ConfigError(f"cpus must be 1..{have} (the CPUs this process may use), got {self.cpus!r}")
        if not self.limit_s > 0:
            raise ConfigError(f"limit_s must be positive seconds, got {self.limit_s!r}")

    def recorded(self) -> dict[str, Any]:
        """The settings that go into the result's config."""
        data = {k: v for k, v in asdict(self).items() if k not in ("loader", "config", "workload")}
        return {**data, "isolated": True, "loader": _name(self.loader), **dict(self.config)}


def _name(loader: Callable[..., Any]) -> str:
    func = getattr(loader, "func", loader)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"


def _child(spec: RunSpec, conn: Any) -> None:
    """The subprocess: pin, build the loader, measure, send the result as a dict."""
    os.setpgid(0, 0)  # its own process group, so that the parent can end all it started
    config = spec.recorded()
    try:
        from feedbench.pipelines.loop.measure import measure

        if spec.cpus is not None:
            cpus = available_cpus()[: spec.cpus]
            os.sched_setaffinity(0, cpus)  # inherited by the loader's workers
            config["cpu_ids"] = cpus
            # Thread pools sized to the budget (read when torch, TensorFlow and OpenMP start).
            for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
                os.environ[name] = str(spec.cpus)
            import torch

            torch.set_num_threads(spec.cpus)
        result = measure(
            spec.loader(),
            workload=spec.workload,
            device=spec.device,
            steps=spec.steps,
            seconds=spec.seconds,
            warmup=spec.warmup,
            timeout=spec.timeout,
            config=config,
        )
    except Exception as exc:  # the parent gets a failed result, not a traceback
        log.debug("isolated run failed", exc_info=True)
        result = RunResult.failed(f"{type(exc).__name__}: {one_line(exc)}", config=config)
    conn.send(result.to_dict())
    conn.close()


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
    loader factory, such as a lambda). Never raises for what happens in the child: a crash, a kill (the out-of-memory killer
    sends SIGKILL) or a run past ``spec.limit_s`` becomes ``RunResult.failed`` with the
    reason, and the child's whole process tree is gone when this returns.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Not daemonic: the run's DataLoader starts worker processes of its own.
    process = context.Process(target=_child, args=(spec, sender), name="feedbench-run")
    try:
        process.start()  # pickles the spec here, in the parent
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        receiver.close()
        sender.close()
        raise ConfigError(f"RunSpec.loader {_name(spec.loader)} cannot be sent to a spawned run: {exc}") from exc
    sender.close()
    data, timed_out = None, False
    try:
        if receiver.poll(spec.limit_s):
            data = receiver.recv()
        else:
            timed_out = True
    except (EOFError, OSError):
        data = None  # the child died: its exit code says how
    finally:
        receiver.close()
    if data is not None:
        process.join(30)
        if process.is_alive():
            _kill_tree(process.pid)
        _kill_group(process.pid)
        return RunResult.from_dict(data)
    if timed_out:
        _kill_tree(process.pid)
    # The pipe closes a moment before the exit status exists: wait for it, do not guess.
    process.join(30)
    _kill_group(process.pid)  # workers of a run that crashed were left without a parent
    return RunResult.failed(_reason(process.exitcode, spec.limit_s, timed_out), config=spec.recorded())
