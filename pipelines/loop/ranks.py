"""N measured runs at once, one per emulated accelerator ("rank"), each in its own spawned
process with its own loader, all pinned to the same CPUs, their windows opened together.

A capacity run (``feedbench capacity``) asks whether the CPUs feed N accelerators at once; the
ranks must therefore share the budget during the same window. Each rank warms up on its own,
then waits at a barrier; the windows open when the last rank is ready and last the same
number of seconds. The parent watches the whole tree meanwhile: the memory of every rank and
worker together (the ranks' own figures are of their own trees), and the CPU time that
processes other than the ranks took on the budget's CPUs (each rank's own contention counts
its siblings, which share the CPUs by design).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from feedbench.pipelines.core.errors import ConfigError, described
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.loop.isolation import RunSpec, _kill_group, _kill_tree, _pin, _reason
from feedbench.pipelines.loop.result import RunResult
from feedbench.pipelines.loop.sampler import cpu_busy_seconds

log = logging.getLogger(__name__)

WATCH_S = 0.25  # the parent's sampling interval (RSS and CPU times: 0.03 ms a process)
LIST_EVERY = 4  # samples between two listings of the trees (a scan of /proc, about 1 ms)
PSS_EVERY = 8  # samples between two PSS sweeps of the whole tree (about 9 ms a process)


@dataclass(frozen=True)
class RanksRun:
    """What one run of N ranks measured.

    Attributes:
        results: Each rank's RunResult, in rank order (a failed rank says why).
        peak_rss_bytes: Peak resident memory of every rank and worker together.
        peak_pss_bytes: Peak proportional set size of the same (shared pages counted once).
        contention: CPU time that processes other than the ranks and their workers took on the
            budget's CPUs during the common window, as a fraction of the CPUs' time (NaN: not
            read).
        window_s: Seconds of the common window (from the last rank's start to the first end).
    """

    results: tuple[RunResult, ...]
    peak_rss_bytes: int = 0
    peak_pss_bytes: int = 0
    contention: float = math.nan
    window_s: float = math.nan

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)


def _rank_child(payload: tuple[RunSpec, Any, float], conn: Any) -> None:
    """A rank: pin, build the loader, warm up, wait for the others, measure; send the result
    and when its window opened (CLOCK_MONOTONIC, the same in every process), and only then let
    the loader go (as isolation's runs do: what ends with it cannot lose the figure)."""
    os.setpgid(0, 0)
    spec, barrier, wait_s = payload
    config = spec.recorded()
    opened: list[float] = []
    loader = None

    def together() -> None:
        try:
            barrier.wait(wait_s)
        except threading.BrokenBarrierError:
            raise RuntimeError("another rank failed or timed out before its window opened") from None
        opened.append(time.monotonic())

    try:
        from feedbench.pipelines.loop.measure import measure_with

        ids = _pin(spec.measure.cpus)
        if ids is not None:
            config["cpu_ids"] = ids
        loader = spec.loader()
        result = measure_with(loader, spec.measure, config, before_window=together)
    except Exception as exc:  # the parent gets a failed result, not a traceback
        log.debug("a rank failed", exc_info=True)
        barrier.abort()  # the others stop waiting for this one
        result = RunResult.failed(described(exc), config=config)
    conn.send((result.to_dict(), opened[0] if opened else None))
    conn.close()
    del loader


@dataclass
class _Watch:
    """The parent's view of the ranks' trees: peak memory, and per sample (time, CPU time of the
    budget's CPUs, CPU time of the trees and of this process, whose watch is part of the run)
    for the contention of the common window."""

    pids: Sequence[int]
    cpu_ids: Sequence[int]
    samples: list[tuple[float, float | None, float]] = field(default_factory=list)
    peak_rss: int = 0
    peak_pss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _cpu: dict[int, float] = field(default_factory=dict)
    _processes: list[psutil.Process] = field(default_factory=list)
    _own: int = field(default_factory=os.getpid)

    def run(self) -> None:
        count = 0
        while not self._stop.wait(WATCH_S):
            if count % LIST_EVERY == 0:
                self._processes = [psutil.Process(), *self._tree()]  # this process: the watch is part of the run
            self._sample(pss=count % PSS_EVERY == 0)
            count += 1

    def stop(self) -> None:
        self._stop.set()

    def _tree(self) -> list[psutil.Process]:
        processes = []
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                processes += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return processes

    def _sample(self, *, pss: bool) -> None:
        rss = pss_total = 0
        for process in self._processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    self._cpu[process.pid] = times.user + times.system
                    if process.pid == self._own:
                        continue  # its CPU time is the run's; its memory is not the pipelines'
                    rss += process.memory_info().rss
                if pss:
                    pss_total += process.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                continue
        self.peak_rss = max(self.peak_rss, rss)
        if pss:
            self.peak_pss = max(self.peak_pss, pss_total)
        # the trees' CPU time: every process seen so far, its last reading (an exited one keeps its share)
        self.samples.append((time.monotonic(), cpu_busy_seconds(self.cpu_ids), sum(self._cpu.values())))

    def contention(self, start: float, end: float) -> float:
        """CPU time of other processes on the budget's CPUs between `start` and `end`."""
        inside = [s for s in self.samples if start <= s[0] <= end and s[1] is not None]
        if len(inside) < 2:
            return math.nan
        (t0, busy0, own0), (t1, busy1, own1) = inside[0], inside[-1]
        capacity = (t1 - t0) * len(self.cpu_ids)
        if capacity <= 0:
            return math.nan
        return max(0.0, (busy1 - busy0 - (own1 - own0)) / capacity)


def run_ranks(specs: Sequence[RunSpec]) -> RanksRun:
    """Runs the ranks `specs` at once, each in a fresh spawned process pinned to its
    ``measure.cpus`` (the same CPUs for all), their windows opened together; returns what
    each measured and the whole tree's figures. Never raises for what happens in a rank: a
    crash, a kill or a run past ``limit_s`` is a failed result of that rank with the reason
    (the others' windows do not open without it: they fail too, saying so), and every process
    the ranks started is gone when this returns.

    Raises:
        ConfigError: No ranks, or a loader factory that cannot be sent to a spawned process.
    """
    if not specs:
        raise ConfigError("a capacity run needs at least one rank")
    context = multiprocessing.get_context("spawn")
    limit_s = max(spec.measure.limit_s for spec in specs)
    barrier = context.Barrier(len(specs))
    started: list[tuple[Any, Any]] = []
    try:
        for spec in specs:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_rank_child, args=((spec, barrier, limit_s), sender),
                                      name=f"feedbench-rank-{len(started)}")
            try:
                process.start()
            except (TypeError, AttributeError) as exc:
                receiver.close()
                raise ConfigError(f"the loader of rank {len(started)} cannot be sent to a spawned process: "
                                  f"{exc}") from exc
            finally:
                sender.close()
            started.append((process, receiver))
        return _collect(started, specs, limit_s)
    finally:
        for process, receiver in started:
            receiver.close()
            if process.is_alive():
                _kill_tree(process.pid)
            process.join(10)
            _kill_group(process.pid)


def _collect(started: Sequence[tuple[Any, Any]], specs: Sequence[RunSpec], limit_s: float) -> RanksRun:
    """Waits for every rank's report (up to `limit_s` in all), watching the trees meanwhile."""
    cpus = usable_cpus()
    cpu_ids = cpus[:specs[0].measure.cpus or len(cpus)]
    watch = _Watch([process.pid for process, _ in started], cpu_ids)
    watcher = threading.Thread(target=watch.run, name="feedbench-ranks-watch", daemon=True)
    watcher.start()
    deadline = time.monotonic() + limit_s
    replies: dict[int, tuple[dict[str, Any], float | None] | str] = {}
    try:
        pending = dict(enumerate(started))
        while pending:
            ready = multiprocessing.connection.wait([receiver for _, receiver in pending.values()],
                                                    timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                for rank in pending:
                    replies[rank] = _reason(None, limit_s, True)
                break
            for rank, (process, receiver) in list(pending.items()):
                if receiver in ready:
                    try:
                        replies[rank] = receiver.recv()
                    except (EOFError, OSError):
                        process.join(30)
                        replies[rank] = _reason(process.exitcode, limit_s, False)
                    del pending[rank]
    finally:
        watch.stop()
        watcher.join(5)
    results, opened, closed = [], [], []
    for rank, spec in enumerate(specs):
        reply = replies.get(rank, "no report")
        if isinstance(reply, str):
            results.append(RunResult.failed(reply, config=spec.recorded()))
            continue
        data, start = reply
        result = RunResult.from_dict(data)
        results.append(result)
        if start is not None and result.ok:
            opened.append(start)
            closed.append(start + result.window_s)
    window = (max(opened), min(closed)) if opened and len(opened) == len(specs) else None
    contention = watch.contention(*window) if window else math.nan
    return RanksRun(tuple(results), watch.peak_rss, watch.peak_pss, contention,
                    window[1] - window[0] if window else math.nan)
