"""The metric definitions, in one place. Framework-free: plain numbers in, plain numbers out.

Per measured step i (after warm-up steps, which are excluded):

- ``wait_i``: host seconds blocked in ``next(iterator)``;
- ``h2d_i``: host-to-device copy;
- ``compute_i``: workload time;
- on a device that runs apart from the host (CUDA, and the CPU's emulated device that
  ``emulated:<t>`` launches onto), ``idle_i``: the gap on the device's timeline between the
  end of step i-1's work and the start of step i's work, read from its events (CUDA events on
  CUDA); ``h2d_i`` and ``compute_i`` are then read from them too.

From them, over the measured window:

- throughput: samples/s and batches/s over the window (wall clock, synchronized);
- starvation: the fraction of the window the accelerator had no work because no batch
  was ready: ``sum(idle_i) / window`` on a device timeline (the device's own window: from the
  event that opens it to the end of the last step's work), ``sum(wait_i) / window`` for a
  workload that runs in the host's thread (``emulated-sync:<t>``, a model step on the CPU);
- accelerator utilization (AU, as MLPerf Storage defines it): ``sum(compute_i) / window``;
- wait percentiles p50/p95/p99 of ``wait_i``;
- input-bound verdict, the TensorFlow Profiler's reading of the same figure: under 5% of
  step time waiting for input is "not", 5-20% "moderately", 20% or more "highly";
- contention: the CPU time other processes took on the run's CPUs during the window (their
  busy time in /proc/stat less the run's own process tree), as a fraction of the window x
  the CPUs. A run above :data:`CONTENDED` shared its CPUs: its figures are kept, but no
  verdict is drawn from them (DESIGN.md). Unknown (NaN) for a window under 0.4 s of the CPUs'
  time: /proc/stat counts in 10 ms ticks.

A producer with a known per-batch cost d and a workload with a known step time c have an
analytic steady state (:func:`steady_state`), against which the tests hold these figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

INPUT_BOUND_LEVELS = ((0.05, "not"), (0.20, "moderately"), (math.inf, "highly"))
CONTENDED = 0.05  # a run whose CPUs other processes used for more than this fraction shared them


def contended(contention: float | None) -> bool:
    """Whether a run's contention says it shared its CPUs (an unknown one does not)."""
    return contention is not None and not math.isnan(contention) and contention > CONTENDED


@dataclass(frozen=True)
class Window:
    """Sums over the measured steps of one run.

    Attributes:
        steps: Measured steps.
        samples: Samples in them.
        window_s: Measured wall-clock seconds (synchronized with the device).
        starved_s: Seconds the device had no work for want of a batch: sum of idle_i on
            CUDA, of wait_i on the CPU.
        compute_s: Sum of compute_i.
    """

    steps: int
    samples: int
    window_s: float
    starved_s: float
    compute_s: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.window_s if self.window_s > 0 else 0.0

    @property
    def batches_per_s(self) -> float:
        return self.steps / self.window_s if self.window_s > 0 else 0.0

    @property
    def starvation(self) -> float:
        return _fraction(self.starved_s, self.window_s)

    @property
    def accelerator_utilization(self) -> float:
        return _fraction(self.compute_s, self.window_s)


def _fraction(part: float, whole: float) -> float:
    """part / whole, clipped to [0, 1]: timer granularity can push a sum past its window."""
    if whole <= 0:
        return 0.0
    return min(1.0, max(0.0, part / whole))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between order statistics."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def input_bound(starvation: float) -> str:
    """The TF Profiler's verdict for a fraction of step time spent waiting for input."""
    for limit, verdict in INPUT_BOUND_LEVELS:
        if starvation < limit:
            return verdict
    return "highly"  # NaN


@dataclass(frozen=True)
class SteadyState:
    """The analytic truth for a producer of cost d per batch and a step of c seconds."""

    period_s: float
    batches_per_s: float
    starvation: float
    accelerator_utilization: float


def steady_state(
    producer_s: float, step_s: float, *, prefetch: bool, parallel: int = 1, async_step: bool = False
) -> SteadyState:
    """Steady state of a producer of known cost feeding a workload of known step time.

    A synchronous producer makes the next batch only when asked: the period is d + c. A
    prefetching one (a background thread or `parallel` workers making batches while the
    step runs) has period max(d / parallel, c). A step that only launches device work and
    returns (CUDA, and ``emulated:<t>`` on the CPU's emulated device: the loop does not wait
    for each step) lets even a synchronous producer make the next batch while the device
    runs, so its period is max(d, c) too (measured on an H100: the loop then reported 33.1
    batches/s where d + c would have said 25).
    Starvation is 1 - c / period and AU is c / period.

    Args:
        producer_s: d, seconds to make one batch (on one worker).
        step_s: c, seconds of one workload step.
        prefetch: Whether batches are made while the step runs.
        parallel: Workers making batches at once (prefetching producers only).
        async_step: Whether the step runs asynchronously on a device (CUDA, or the CPU's
            emulated device); False for a step in the host's thread (``emulated-sync:<t>``).
    """
    if prefetch:
        period = max(producer_s / parallel, step_s)
    else:
        period = max(producer_s, step_s) if async_step else producer_s + step_s
    return SteadyState(
        period_s=period,
        batches_per_s=1.0 / period,
        starvation=1.0 - step_s / period,
        accelerator_utilization=step_s / period,
    )
