"""Ranks measured at once: their windows open together; a rank that fails before its window
stops the others (each says why), none waits for it; every process is gone afterwards."""

import functools
import time

import psutil

from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.isolation import RunSpec
from feedbench.pipelines.loop.ranks import run_ranks
from feedbench.pipelines.truth.synthetic import sleeping_loader

MEASURE = MeasureConfig(workload="emulated:10ms", device="cpu", seconds=0.5, warmup=2, cpus=2, limit_s=120)


def _children():
    """This process's descendants (multiprocessing's resource tracker and a fork server started by
    an earlier test among them: they outlive runs)."""
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_the_windows_open_together_and_every_process_ends():
    good = RunSpec(functools.partial(sleeping_loader, 0.004, workers=1, batch_size=2), MEASURE)
    before = _children()
    run = run_ranks([good, good])
    assert run.ok and [r.ok for r in run.results] == [True, True]
    assert run.window_s > 0.4  # the common window: the last to open to the first to close
    assert _children() <= before


def test_a_rank_that_fails_before_its_window_stops_the_others_at_once():
    good = RunSpec(functools.partial(sleeping_loader, 0.004, workers=1, batch_size=2), MEASURE)
    bad = RunSpec(functools.partial(int, "not a loader"), MEASURE)
    before = _children()
    started = time.monotonic()
    run = run_ranks([good, bad])
    assert time.monotonic() - started < 60  # not the limit of 120 s: the good rank was told to stop
    assert not run.ok and "invalid literal for int()" in run.results[1].error
    assert "another rank failed or timed out before the windows opened" in run.results[0].error
    assert _children() <= before
