"""The consumer loop: pull batches onto the device, run a workload, time every step.

Every pipeline in feedbench is judged by :func:`measure`. The metric definitions are in
:mod:`feedbench.pipelines.loop.metrics`; this module only collects the per-step timings they
are computed from.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from feedbench.pipelines.core.errors import (
    BatchError,
    FeedbenchError,
    LoaderError,
    LoaderTimeout,
    WorkloadError,
    described,
)
from feedbench.pipelines.core.stats import ExplainsStalls, stats_of, use_device
from feedbench.pipelines.loop import metrics
from feedbench.pipelines.loop.adapter import batch_size, pinned, to_device, to_torch
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.devices import resolve_device
from feedbench.pipelines.loop.fetcher import Fetcher
from feedbench.pipelines.loop.result import RunResult
from feedbench.pipelines.loop.sampler import TreeSampler
from feedbench.pipelines.loop.timeline import CudaTimeline, read_events
from feedbench.pipelines.workloads import Workload, parse_workload

log = logging.getLogger(__name__)

_IN_FLIGHT = 2  # steps queued on the device ahead of the host, as a training loop allows


@dataclass
class _Steps:
    """Per-step timings of the measured window (seconds); on a device timeline, each step's
    events (before the copy, after it, after the work) and the event that opened the window."""

    wait: list[float] = field(default_factory=list)
    h2d: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    samples: int = 0
    events: list[tuple[Any, Any, Any]] = field(default_factory=list)
    window_start: Any = None


def measure(
    batches: Iterable[Any],
    *,
    workload: str | Workload = MeasureConfig.workload,
    device: str | torch.device = MeasureConfig.device,
    steps: int | None = MeasureConfig.steps,
    seconds: float | None = MeasureConfig.seconds,
    warmup: int | str = MeasureConfig.warmup,
    timeout: float = MeasureConfig.timeout,
    cycle: bool = MeasureConfig.cycle,
    config: Mapping[str, Any] | None = None,
) -> RunResult:
    """Pulls batches onto the device, runs the workload on each, and measures the loop.

    The first batch is timed (time to first batch) and used to warm the workload up (model
    autotuning, allocator growth) before the loader's own `warmup` steps, which are
    excluded from the figures. Then `steps` batches (or `seconds` of them) are measured:
    per step the host wait in ``next()``, the host-to-device copy and the workload, and on
    CUDA the device's idle gap before the step, from CUDA events.

    A loader that ends before the window does is started again when it is re-iterable (a
    DataLoader or tf.data.Dataset: the epoch boundary is measured like any step) and
    `cycle` is true; otherwise the run stops there and says so (``stop_reason="exhausted"``).
    What the loader reports of itself (:func:`~feedbench.pipelines.core.stats.stats_of`: a
    ``loader_stats()`` method, or stats attached to a tf.data pipeline) is read at the end into
    ``RunResult.skipped`` and ``RunResult.truncated``, and sizes the workload (``Workload.bind``)
    and the "auto" warm-up before the start.

    Args:
        batches: Any iterable of batches in the common format: torch, TensorFlow or NumPy
            tensors, or tuples, lists or dicts of them.
        workload: A workload name (``emulated:20ms``, ``resnet18``, ``resnet50``,
            ``textcls``) or a :class:`Workload`.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        steps: Measured steps (default 50 when `seconds` is not given either).
        seconds: Measured seconds; with `steps` too, whichever ends first.
        warmup: Loader steps before the window, excluded; "auto" (the default): twice the
            batches the loader makes ahead, plus 4, where it says (feedbench's loaders do), else 5.
        timeout: Seconds to wait for any one batch before giving up.
        cycle: Start a re-iterable loader again when it ends.
        config: The loader's configuration, recorded in the result.

    These keywords are the fields of :class:`~feedbench.pipelines.loop.config.MeasureConfig`
    (validated there); :func:`measure_with` takes one.

    Returns:
        The RunResult of the measured window.

    Raises:
        ConfigError: A bad argument, workload or device.
        BatchError: A batch of an unknown type or without samples (naming the step).
        LoaderError: The loader raised, yielded nothing, or ended within the warm-up;
            LoaderTimeout when no batch came within `timeout`. Both name the step.
    """
    device_name = str(device) if isinstance(device, torch.device) else device
    settings = MeasureConfig(workload=workload, device=device_name, steps=steps, seconds=seconds, warmup=warmup,
                             timeout=timeout, cycle=cycle)
    return measure_with(batches, settings, config)


def measure_with(batches: Iterable[Any], settings: MeasureConfig, config: Mapping[str, Any] | None = None, *,
                 before_window: Callable[[], None] | None = None) -> RunResult:
    """:func:`measure` with its settings in one MeasureConfig (``cpus`` and ``limit_s``, which
    only isolated runs use, are recorded, not applied). `before_window`, where given, is called
    after the warm-up, just before the window opens (the ranks of a capacity run wait there for
    one another, so that their windows start together)."""
    work = parse_workload(settings.workload)
    work.bind(stats_of(batches))  # before the settings: binding may size the workload (textcls)
    dev = resolve_device(settings.device)
    use_device(batches, dev.type)  # a loader that pins pins for CUDA only
    warmup = settings.warmup_steps(stats_of(batches).batches_ahead)
    # What was asked (config: the loader's settings and, for an isolated run, the run's), then
    # what it resolved to: the device "auto" named, the warm-up "auto" counted, the workload named.
    recorded = {**dict(config or {}), **settings.to_dict(), "workload": work.describe(), "device": str(dev),
                "warmup": warmup}
    threads = stats_of(batches).threads
    if threads:
        recorded["threads"] = dict(threads)
    loop = _Loop(batches, work, dev, settings.timeout, settings.cycle)
    # Events, the emulated kernel and the workload's launches go to the current device.
    on_device = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
    try:
        with on_device:
            return loop.run(settings.steps, settings.seconds, warmup, recorded, before_window)
    finally:
        loop.close()


class _Loop:
    """One run of :func:`measure`: state shared by its phases."""

    def __init__(self, batches: Iterable[Any], workload: Workload, device: torch.device, timeout: float,
                 cycle: bool) -> None:
        self.batches = batches
        self.workload = workload
        self.device = device
        self.cuda = device.type == "cuda"
        self.timeline: Any = None  # set in run(): CUDA's stream, or the workload's emulated device
        self.timeout = timeout
        self.cycle = cycle
        self.reiterable = not hasattr(batches, "__next__")
        self.fetcher = Fetcher(batches)
        self.sampler = TreeSampler()
        self.step_number = 0  # batches asked for so far, warm-up included (1-based in messages)
        self.epochs = 0
        self.warmup_steps = 0

    def close(self) -> None:
        self.fetcher.close()
        self.sampler.stop()
        self.workload.close()

    def _where(self) -> str:
        phase = (f"warm-up step {self.step_number} of {self.warmup_steps}"
                 if self.step_number <= self.warmup_steps else "")
        return f"step {self.step_number}" + (f" ({phase})" if phase else "")

    def _stall_reason(self) -> str:
        """What a loader that can tell says about why no batch came (a disaggregated loader's
        dead worker or unreachable service: its ``stall_reason()``), as ": why"; "" if none."""
        try:
            reason = self.batches.stall_reason() if isinstance(self.batches, ExplainsStalls) else ""
        except Exception:  # noqa: BLE001  # a diagnosis must not replace the timeout itself
            reason = ""
        return f": {reason}" if reason else ""

    def _call(self, request: str) -> tuple[str, Any]:
        try:
            kind, value = self.fetcher.call(request, self.timeout)
        except queue.Empty:
            raise LoaderTimeout(f"no batch from the loader after {self.timeout:g} s at {self._where()}"
                                f"{self._stall_reason()}") from None
        if kind == "error":
            raise LoaderError(f"the loader raised at {self._where()}: {described(value)}") from value
        return kind, value

    def _start_epoch(self) -> None:
        self._call("iter")
        self.epochs += 1

    def fetch(self) -> Any | None:
        """The next batch, starting a new epoch where allowed; None when the loader is done."""
        self.step_number += 1
        kind, value = self._call("next")
        if kind == "end" and self.reiterable and self.cycle and self.step_number > 1:
            self._start_epoch()
            kind, value = self._call("next")
        if kind == "end":
            if self.step_number == 1:
                raise LoaderError("the loader yielded no batch (an empty iterable)")
            return None
        return value

    def prepare(self, raw: Any) -> tuple[Any, int]:
        """(host batch as torch tensors, pinned on CUDA; sample count); errors name the step."""
        try:
            batch = to_torch(raw)
            count = batch_size(batch)
            if count == 0:  # would be measured as a step of no samples: 0 samples/s, "ok"
                raise BatchError("a batch of no samples (a loader must yield at least one sample a batch)")
        except BatchError as exc:
            raise BatchError(f"{self._where()}: {exc}") from exc
        return (pinned(batch) if self.cuda else batch), count

    def synchronize(self) -> None:
        if self.timeline is not None:
            self.timeline.synchronize()

    def run(self, steps: int | None, seconds: float | None, warmup: int, settings: dict,
            before_window: Callable[[], None] | None = None) -> RunResult:
        self.warmup_steps = warmup
        self.workload.setup(self.device)
        self.timeline = CudaTimeline(self.device) if self.cuda else self.workload.timeline()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sampler.start()
        started = time.perf_counter()
        self._start_epoch()
        first = self.fetch()
        ttfb_s = time.perf_counter() - started
        batch, _ = self.prepare(first)
        on_device = to_device(batch, self.device)
        self._work(self.workload.warmup, on_device)  # before the loader's warm-up, apart from it
        self.synchronize()
        pending: list[Any] = []
        self._paced_step(on_device, pending)  # the first batch is warm-up step 1
        self.sampler.sweep()  # PSS with the workers started; the rest of the warm-up drains what they made meanwhile
        for _ in range(warmup - 1):
            raw = self.fetch()
            if raw is None:
                raise LoaderError(f"the loader ended after {self.step_number - 1} batches, "
                                  f"within the {warmup} warm-up steps")
            self._paced_step(to_device(self.prepare(raw)[0], self.device), pending)
        self.synchronize()
        if before_window is not None:
            before_window()
        timings, stop_reason, window_s = self._measure(steps, seconds)
        self.sampler.stop()
        if not timings.wait:
            raise LoaderError(f"the loader ended after {self.step_number - 1} batches, before any measured step")
        return self._result(timings, window_s, ttfb_s, stop_reason, settings)

    def _measure(self, steps: int | None, seconds: float | None) -> tuple[_Steps, str, float]:
        timings = _Steps()
        clock = time.perf_counter
        self.sampler.mark()  # before the window: cheap readings only, so that the workers get no head start
        if self.timeline is not None:
            timings.window_start = self.timeline.event()
        t0 = clock()
        stop_reason = "steps"
        while steps is None or len(timings.wait) < steps:
            if seconds is not None and clock() - t0 >= seconds:
                stop_reason = "seconds"
                break
            asked = clock()
            raw = self.fetch()
            got = clock()
            if raw is None:
                stop_reason = "exhausted"
                log.warning("the loader ended after %d measured steps; it is not re-iterable", len(timings.wait))
                break
            batch, count = self.prepare(raw)
            timings.wait.append(got - asked)
            timings.samples += count
            if self.timeline is not None:
                self._device_step(batch, timings)
            else:
                copied = clock()
                on_device = to_device(batch, self.device)
                computed = clock()
                self._work(self.workload.step, on_device)
                done = clock()
                timings.h2d.append(computed - copied)
                timings.compute.append(done - computed)
        self.synchronize()
        return timings, stop_reason, clock() - t0

    def _work(self, call: Any, batch: Any) -> None:
        """Runs a workload call; its errors name the step."""
        try:
            call(batch)
        except FeedbenchError:
            raise
        except Exception as exc:
            raise WorkloadError(f"the workload raised at {self._where()}: {described(exc)}") from exc

    def _paced_step(self, batch: Any, pending: list[Any]) -> None:
        """A warm-up step; on a device timeline at most _IN_FLIGHT queued, as in the window, so
        that the warm-up does not let the loader's buffers fill while the device catches up."""
        if self.timeline is not None and len(pending) >= _IN_FLIGHT:
            pending.pop(0).synchronize()
        self._work(self.workload.step, batch)
        if self.timeline is not None:
            pending.append(self.timeline.event())

    def _device_step(self, batch: Any, timings: _Steps) -> None:
        """One step on a device timeline: events around the copy and the work, at most
        _IN_FLIGHT steps queued ahead of the host, as a training loop allows."""
        if len(timings.events) >= _IN_FLIGHT:
            timings.events[-_IN_FLIGHT][2].synchronize()
        start = self.timeline.event()
        on_device = to_device(batch, self.device)
        copied = self.timeline.event()
        self._work(self.workload.step, on_device)
        timings.events.append((start, copied, self.timeline.event()))

    def _result(self, timings: _Steps, window_s: float, ttfb_s: float, stop_reason: str, settings: dict) -> RunResult:
        stats = stats_of(self.batches)  # at the end: counts grow as the loader reads
        window = metrics.Window(len(timings.wait), timings.samples, window_s, sum(timings.wait), sum(timings.compute))
        if self.timeline is not None:
            # Fractions of the device's own window, where idle + h2d + compute add up exactly.
            timings.idle, timings.h2d, timings.compute, device_window_s = read_events(timings.events,
                                                                                      timings.window_start)
            fractions = metrics.Window(window.steps, window.samples, device_window_s, sum(timings.idle),
                                       sum(timings.compute))
        else:
            fractions = window
        starvation, utilization = fractions.starvation, fractions.accelerator_utilization
        waits = timings.wait
        return RunResult(
            samples_per_s=window.samples_per_s,
            batches_per_s=window.batches_per_s,
            starvation=starvation,
            accelerator_utilization=utilization,
            ttfb_s=ttfb_s,
            wait_p50_s=metrics.percentile(waits, 50),
            wait_p95_s=metrics.percentile(waits, 95),
            wait_p99_s=metrics.percentile(waits, 99),
            wait_mean_s=sum(waits) / len(waits),
            h2d_mean_s=_mean(timings.h2d),
            compute_mean_s=_mean(timings.compute),
            window_s=window_s,
            steps=window.steps,
            warmup_steps=self.warmup_steps,
            samples=window.samples,
            epochs=self.epochs,
            stop_reason=stop_reason,
            device=str(self.device),
            workload=self.workload.describe(),
            peak_rss_bytes=self.sampler.peak_rss_bytes,
            peak_pss_bytes=self.sampler.peak_pss_bytes,
            peak_device_bytes=torch.cuda.max_memory_allocated(self.device) if self.cuda else None,
            cpu_util=self.sampler.cpu_util(),
            contention=self.sampler.contention(),
            skipped=stats.skipped,
            truncated=stats.truncated,
            config=settings,
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
