import math

import pytest

from feedbench.pipelines.loop import metrics


def test_window_figures_follow_the_definitions():
    window = metrics.Window(steps=40, samples=320, window_s=2.0, starved_s=0.5, compute_s=1.2)
    assert window.samples_per_s == 160.0
    assert window.batches_per_s == 20.0
    assert window.starvation == 0.25
    assert window.accelerator_utilization == 0.6


def test_fractions_are_clipped_and_empty_windows_are_zero():
    assert metrics.Window(1, 1, 1.0, 1.01, 1.02).starvation == 1.0
    assert metrics.Window(0, 0, 0.0, 0.0, 0.0).accelerator_utilization == 0.0


def test_percentile_interpolates_between_order_statistics():
    values = [5, 1, 4, 2, 3]
    assert metrics.percentile(values, 50) == 3
    assert metrics.percentile(values, 0) == 1 and metrics.percentile(values, 100) == 5
    assert metrics.percentile(values, 95) == pytest.approx(4.8)
    assert math.isnan(metrics.percentile([], 50))


@pytest.mark.parametrize(
    ("starvation", "verdict"),
    [(0.0, "not"), (0.0499, "not"), (0.05, "moderately"), (0.1999, "moderately"), (0.2, "highly"), (1.0, "highly")]
)
def test_input_bound_levels_are_the_tf_profilers(starvation, verdict):
    assert metrics.input_bound(starvation) == verdict


def test_steady_states():
    sync = metrics.steady_state(0.03, 0.01, prefetch=False)
    assert sync.period_s == pytest.approx(0.04) and sync.starvation == pytest.approx(0.75)
    fed = metrics.steady_state(0.01, 0.03, prefetch=True)
    assert fed.period_s == pytest.approx(0.03) and fed.starvation == 0 and fed.accelerator_utilization == 1
    parallel = metrics.steady_state(0.06, 0.015, prefetch=True, parallel=2)
    assert parallel.period_s == pytest.approx(0.03) and parallel.accelerator_utilization == pytest.approx(0.5)


def test_a_synchronous_producer_overlaps_an_asynchronous_device_step():
    # CUDA: the step launches and returns, so the next batch is made while the device runs.
    producer_bound = metrics.steady_state(0.03, 0.01, prefetch=False, async_step=True)
    assert producer_bound.period_s == pytest.approx(0.03) and producer_bound.starvation == pytest.approx(2 / 3)
    consumer_bound = metrics.steady_state(0.01, 0.03, prefetch=False, async_step=True)
    assert consumer_bound.period_s == pytest.approx(0.03) and consumer_bound.starvation == 0
