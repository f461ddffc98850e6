"""The tree sampler's contention: the CPU time other processes take on the run's CPUs, read from
/proc/stat against the run's own process tree, checked against real processes."""

import functools
import math
import os
import subprocess
import sys
import time

import pytest

from feedbench.pipelines import MeasureConfig, RunSpec, run_isolated
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.loop.sampler import cpu_busy_seconds
from feedbench.pipelines.truth.synthetic import SleepProducer, cpu_bound_loader

CPU = usable_cpus()[0]  # an isolated run with cpus=1 is pinned to the first usable CPU
SPIN = ("import os, sys, time\nos.sched_setaffinity(0, {%d})\nend = time.time() + float(sys.argv[1])\n"
        "while time.time() < end: pass\n")


def _others_busy(seconds: float = 0.5) -> float:
    """The fraction of CPU's time others than this process used over `seconds`."""
    before, own = cpu_busy_seconds([CPU]), time.process_time()
    time.sleep(seconds)
    return (cpu_busy_seconds([CPU]) - before - (time.process_time() - own)) / seconds


@pytest.fixture
def quiet_cpu():
    if _others_busy() > 0.05:
        pytest.skip(f"CPU {CPU} is busy with other processes: a run on it cannot read 0 contention")


def test_a_process_beside_the_run_on_its_cpu_is_contention():
    spinner = subprocess.Popen([sys.executable, "-c", SPIN % CPU, "30"])
    try:
        time.sleep(0.3)
        spec = RunSpec(functools.partial(SleepProducer, 0.005), MeasureConfig(workload="emulated:5ms", device="cpu",
                                                                             seconds=2.0, warmup=2, cpus=1))
        result = run_isolated(spec)
    finally:
        spinner.kill()
        spinner.wait()
    assert result.ok, result.error
    # The run sleeps most of the time: the spinner has most of the CPU.
    assert result.contention > 0.5, result.contention


def test_the_runs_own_workers_are_not_contention(quiet_cpu):
    """One CPU-bound DataLoader worker spins on the run's one CPU: busy, but the run's own."""
    spec = RunSpec(functools.partial(cpu_bound_loader, 0.02, workers=1),
                   MeasureConfig(workload="emulated:5ms", device="cpu", seconds=2.0, warmup=4, cpus=1))
    result = run_isolated(spec)
    assert result.ok, result.error
    assert result.cpu_util > 0.6  # the worker kept the CPU busy
    assert result.contention < 0.05, (result.contention, result.cpu_util)


def test_busy_seconds_read_the_cpus_asked_for():
    assert cpu_busy_seconds([CPU]) > 0
    assert cpu_busy_seconds([10_000]) is None  # a CPU the machine does not have
    assert os.path.exists("/proc/stat")


def test_a_window_too_short_for_the_clock_ticks_has_no_contention():
    """/proc/stat counts in 10 ms ticks: in a window of a few ms one tick read as 100%."""
    from feedbench.pipelines.loop.sampler import TreeSampler

    sampler = TreeSampler(cpus=[CPU]).start()
    sampler.mark()
    time.sleep(0.005)
    sampler.stop()
    assert math.isnan(sampler.contention())
