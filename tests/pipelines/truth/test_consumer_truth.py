"""The consumer loop against analytic ground truth (metrics.steady_state), on the CPU.

Tolerances from the issue: throughput within 5%, starvation and AU within 0.03.
"""

import pytest

from feedbench.pipelines.truth.validate import CASES, FRACTION_TOLERANCE, THROUGHPUT_TOLERANCE, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_measured_steady_state_matches_the_analytic_one(case):
    check = run_case(case, device="cpu")
    result, truth = check.result, check.truth
    assert result.ok and result.steps == 60 and result.samples == 60 * (4 if case.producer == "workers" else 8)
    assert result.batches_per_s == pytest.approx(truth.batches_per_s, rel=THROUGHPUT_TOLERANCE)
    assert result.samples_per_s == pytest.approx(result.batches_per_s * result.samples / result.steps)
    assert result.starvation == pytest.approx(truth.starvation, abs=FRACTION_TOLERANCE)
    assert result.accelerator_utilization == pytest.approx(truth.accelerator_utilization, abs=FRACTION_TOLERANCE)


def test_the_cases_cover_every_regime():
    regimes = {(c.producer, c.truth().starvation > 0.05) for c in CASES}
    assert regimes >= {("sync", True), ("prefetch", True), ("prefetch", False), ("workers", True), ("workers", False)}
    assert any(c.producer == "workers" and c.workers > 1 for c in CASES)
