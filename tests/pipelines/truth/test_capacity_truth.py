"""The capacity search against producers of known cost: N ranks, each a DataLoader whose one
worker spins a known CPU time per batch (80 ms), feeding an emulated accelerator of known step
(100 ms), all on 2 CPUs.

A rank needs SPIN_S / STEP_S = 0.8 of a CPU for its worker, and its consumer a little more (the
loop, its sampler, the emulated device): r1, read from the one-rank run (its tree's CPU
seconds a second at AU 1). N ranks then get AU min(1, 2 / (N x r1)), the CPUs shared evenly:
2 ranks hold AU 1 (1.7 of 2 CPUs) and 3 get about 0.79 each, so the analytic capacity at AU 0.9
is 2. Each rank's AU is held to its analytic value at N = 1 and 2; at N = 3 the ranks' mean AU
(three processes on two CPUs are not shared evenly over a window of seconds: the straggler is
what capacity is about)."""

import functools

import pytest

from feedbench.pipelines.harness.capacity_search import Accelerator, Point, predict, search
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.isolation import RunSpec
from feedbench.pipelines.loop.metrics import contended
from feedbench.pipelines.loop.ranks import run_ranks
from feedbench.pipelines.truth.synthetic import cpu_bound_loader

CPUS, BATCH, SPIN_S, STEP_S, TARGET = 2, 4, 0.080, 0.100, 0.9
ACCELERATOR = Accelerator("truth", BATCH, STEP_S, "the test")
MEASURE = MeasureConfig(workload=ACCELERATOR.workload, device="cpu", seconds=4.0, warmup=4, cpus=CPUS, limit_s=120)


def _measure(ranks, accelerator=ACCELERATOR, seconds=4.0):
    measure = MeasureConfig(workload=accelerator.workload, device="cpu", seconds=seconds, warmup=4, cpus=CPUS,
                            limit_s=120)
    spec = RunSpec(functools.partial(cpu_bound_loader, SPIN_S, workers=1, batch_size=BATCH), measure, {"ranks": ranks})
    return Point(ranks, 1, run_ranks([spec] * ranks), TARGET)


def _skip_if_busy(points):
    busy = [p.ranks for p in points if not p.run.contention >= 0 or contended(p.run.contention)]
    if busy:
        pytest.skip(f"the machine was busy: the runs of N={busy} shared their CPUs with other processes")


def test_the_search_finds_the_analytic_capacity_and_the_ranks_their_analytic_au():
    found = search(_measure, accelerator=ACCELERATOR, cpus=CPUS, target_au=TARGET, max_ranks=6)
    _skip_if_busy(found.points)
    for point in found.points:
        assert point.run.ok, [r.error for r in point.run.results]
        assert len(point.run.results) == point.ranks
        assert point.run.window_s == pytest.approx(4.0, abs=0.3)  # the ranks' windows overlapped
        assert point.run.peak_rss_bytes > point.ranks * 100e6  # every rank and worker, torch loaded in each
    one = found.point(1).run.results[0]
    need = one.cpu_util  # CPU seconds a second one rank uses at AU 1, its consumer included
    assert one.accelerator_utilization == pytest.approx(1.0, abs=0.03) and need == pytest.approx(0.85, abs=0.07)

    def analytic(ranks):
        return min(1.0, CPUS / (ranks * need))

    assert found.score == 2 == max(n for n in range(1, 7) if analytic(n) >= TARGET)
    assert [p.ranks for p in found.points] == [1, 2, 3]  # N = 1, the prediction, and the one above it
    assert found.predicted == 2 == predict(found.points[0], ACCELERATOR, CPUS, TARGET)
    for result in found.point(2).run.results:
        assert result.accelerator_utilization == pytest.approx(analytic(2), abs=0.03)
    three = [r.accelerator_utilization for r in found.point(3).run.results]
    assert sum(three) / 3 == pytest.approx(analytic(3), abs=0.03)
    assert found.point(3).straggler == three.index(min(three)) and not found.point(3).holds


def test_one_accelerator_that_misses_is_a_fraction():
    fast = Accelerator("truth-fast", BATCH, SPIN_S / 2)  # it takes a batch twice as fast as one worker makes it
    found = search(functools.partial(_measure, accelerator=fast, seconds=2.0), accelerator=fast, cpus=CPUS,
                   target_au=TARGET)
    assert [p.ranks for p in found.points] == [1]
    _skip_if_busy(found.points)
    assert found.score == pytest.approx(0.5, abs=0.03)  # the worker's rate over the accelerator's: 40 / 80 ms
    assert f"these CPUs feed {found.score:.2f} of one" in found.reason
