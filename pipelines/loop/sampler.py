"""Memory and CPU of the whole process tree (DataLoader workers included), sampled in the
background while a run is measured, and the CPU time other processes took on the run's CPUs."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence

import psutil

from feedbench.pipelines.core.machine import usable_cpus

log = logging.getLogger(__name__)

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The CPUs' time a window must hold for its contention to be read: /proc/stat counts in ticks
# (10 ms), a few of them either side of the window; in 0.4 s they are within 5%.
CONTENTION_MIN_S = 0.4
# /proc/stat's columns of the time processes ran on a CPU: user, nice, system (guest time is
# inside user). Not irq, softirq and steal: a run's own wake-ups cost interrupt time, and on a
# virtual machine the hypervisor's steal grows with them (measured here: 3% of two CPUs for a
# run sleeping 10 ms a step), which would read as other processes.
_BUSY_COLUMNS = (0, 1, 2)


def cpu_busy_seconds(cpus: Sequence[int]) -> float | None:
    """Seconds that processes (all of them) have run on the CPUs `cpus` since boot, from
    /proc/stat; None where it cannot be read."""
    wanted = {f"cpu{cpu}" for cpu in cpus}
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            rows = [line.split() for line in stat if line.startswith("cpu")]
    except OSError:
        return None
    ticks = 0
    found = 0
    for row in rows:
        if row[0] in wanted:
            values = [int(v) for v in row[1:]]
            ticks += sum(values[i] for i in _BUSY_COLUMNS if i < len(values))
            found += 1
    return ticks / _TICKS_PER_S if found == len(wanted) else None


class TreeSampler:
    """Samples RSS, PSS and CPU time of this process and its descendants.

    Peaks cover the whole run (start to stop); CPU time is taken between :meth:`mark`
    (start of the measured window) and :meth:`stop`, per process, so that workers which
    start or exit during the window still count for the time they ran.

    Costs differ by a factor of 300, so each is sampled at its own rate: RSS and CPU times
    (/proc/<pid>/statm and stat, 0.03 ms a process) every `interval_s`; the process list
    (a scan of /proc, about 1 ms) every `list_every` samples; PSS (smaps_rollup, which walks
    the page tables: about 9 ms for a process with torch loaded) every `pss_every` samples,
    after the first warm-up step (:meth:`sweep`) and at the end. Together under 2% of a core.

    Contention (:meth:`contention`): the CPU time that other processes took on the run's CPUs
    between :meth:`mark` and :meth:`stop` (their busy time in /proc/stat, less the tree's own),
    as a fraction of the interval x the CPUs.

    Args:
        interval_s: Seconds between samples.
        list_every: Samples between refreshes of the process list.
        pss_every: Samples between PSS readings.
        cpus: The CPUs the run may use (its affinity: the tree runs nowhere else); None for
            this process's.
    """

    def __init__(self, interval_s: float = 0.1, list_every: int = 5, pss_every: int = 20,
                 cpus: Sequence[int] | None = None) -> None:
        self.cpus = usable_cpus() if cpus is None else list(cpus)
        self._busy_at_mark: float | None = None
        self._busy_at_stop: float | None = None
        self.interval_s = interval_s
        self.list_every = list_every
        self.pss_every = pss_every
        self._count = 0
        self._processes: list[psutil.Process] = []
        self.peak_rss_bytes = 0
        self.peak_pss_bytes = 0
        self._cpu_at_mark: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._cpu_last_at_stop: dict[int, float] = {}
        self._mark_t = self._stop_t = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._root = psutil.Process()
        self._thread = threading.Thread(target=self._run, name="feedbench-sampler", daemon=True)

    def start(self) -> TreeSampler:
        self._sample(pss=True)
        self._thread.start()
        return self

    def sweep(self) -> None:
        """Reads PSS now (milliseconds a process: with torch loaded and a worker, 60-90 ms). The
        loop calls it after the first warm-up step, when the workers have started: the rest of
        the warm-up then drains what the workers made ahead while the consumer was held here."""
        self._sample(pss=True)

    def mark(self) -> None:
        """Starts the CPU accounting of the measured window; call it just before the window.

        Only cheap readings are taken here (the process list, CPU times, the clock: about a
        millisecond). A PSS sweep here held the consumer back while the workers went on filling
        their buffers, and the window started ahead: a producer-bound run measured faster than
        it is (:meth:`sweep` comes earlier); one in the window takes the run's CPU.
        """
        with self._lock:
            self._sample_locked(pss=False, refresh=True)
            self._cpu_at_mark = dict(self._cpu_last)
            self._busy_at_mark = cpu_busy_seconds(self.cpus)
            self._mark_t = time.perf_counter()

    def stop(self) -> None:
        """Ends the sampling: CPU times and the clock first, then a last PSS reading.

        Calling it again, or before :meth:`start`, does nothing.
        """
        if self._stop.is_set() or not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._sample_locked(pss=False)
            self._stop_t = time.perf_counter()
            self._busy_at_stop = cpu_busy_seconds(self.cpus)
            self._cpu_last_at_stop = dict(self._cpu_last)
            self._sample_locked(pss=True)

    def cpu_seconds(self) -> float:
        """CPU seconds the tree used between :meth:`mark` and :meth:`stop` (new processes in full)."""
        with self._lock:
            return sum(cpu - self._cpu_at_mark.get(pid, 0.0) for pid, cpu in self._cpu_last_at_stop.items())

    def cpu_util(self) -> float:
        """Cores busy on average between :meth:`mark` and :meth:`stop` (2.0: two cores)."""
        interval = self._stop_t - self._mark_t
        return self.cpu_seconds() / interval if interval > 0 else float("nan")

    def contention(self) -> float:
        """The fraction of the run's CPUs' time between :meth:`mark` and :meth:`stop` that other
        processes took (0: the run had its CPUs to itself); NaN where /proc/stat is unreadable,
        or where the window is too short for the kernel's clock ticks to tell (under
        CONTENTION_MIN_S of the CPUs' time: a tick of 10 ms in a window of 8 ms read as 100%)."""
        interval = self._stop_t - self._mark_t
        if self._busy_at_mark is None or self._busy_at_stop is None or interval <= 0:
            return math.nan
        if interval * len(self.cpus) < CONTENTION_MIN_S:
            return math.nan
        others = (self._busy_at_stop - self._busy_at_mark) - self.cpu_seconds()
        return min(1.0, max(0.0, others / (interval * len(self.cpus))))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, pss: bool | None = None) -> None:
        with self._lock:
            self._sample_locked(pss)

    def _sample_locked(self, pss: bool | None = None, refresh: bool = False) -> None:
        """One sample; `pss`: True or False to read PSS or not, None as scheduled."""
        if pss or refresh or self._count % self.list_every == 0:
            try:
                self._processes = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
        if pss is None:
            pss = self._count % self.pss_every == 0
        self._count += 1
        rss_total = pss_total = 0
        for process in self._processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    memory = process.memory_full_info() if pss else process.memory_info()
            except psutil.Error:
                continue  # exited since the listing: its last CPU reading stands
            rss_total += memory.rss
            pss_total += getattr(memory, "pss", memory.rss) if pss else 0
            self._cpu_last[process.pid] = times.user + times.system
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss_total)
        self.peak_pss_bytes = max(self.peak_pss_bytes, pss_total)
