"""The capacity search on a model of known answers (no processes): each N measured at most
once, the largest N that holds found from any prediction, a fraction below one; the
accelerator profiles and a custom one; bad values in one line."""

import math

import pytest

from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.capacity_search import (
    PROFILES,
    Accelerator,
    Point,
    budget_share,
    parse_accelerator,
    predict,
    search,
    straggler_result,
)
from feedbench.pipelines.loop.ranks import RanksRun
from feedbench.pipelines.loop.result import RunResult

ACCELERATOR = Accelerator("model", 10, 0.1)  # 100 samples/s at AU 1


def _machine(cpus, per_sample_s, *, target=0.9, failing=()):
    """N ranks on `cpus` CPUs, each sample costing `per_sample_s` CPU seconds: each rank's AU is
    min(1, cpus / (N x per_sample_s x demand)), rank 1's 0.01 below; the calls are counted."""
    calls = []

    def measure(ranks):
        calls.append(ranks)
        au = min(1.0, cpus / (ranks * per_sample_s * ACCELERATOR.demand))
        rate = au * ACCELERATOR.demand
        if ranks in failing:
            results = tuple(RunResult.failed("boom") for _ in range(ranks))
        else:
            results = tuple(RunResult(ok=True, samples_per_s=rate, accelerator_utilization=au - 0.01 * (r == 1),
                                      cpu_util=rate * per_sample_s, starvation=1 - au) for r in range(ranks))
        return Point(ranks, 1, RanksRun(results), target)

    return measure, calls


def analytic(cpus, per_sample_s, target=0.9):
    """The largest N whose every rank holds the target (rank 1, the straggler, 0.01 below the rest)."""
    n = 1
    while min(1.0, cpus / ((n + 1) * per_sample_s * ACCELERATOR.demand)) - 0.01 >= target:
        n += 1
    return n


@pytest.mark.parametrize(("cpus", "per_sample_s"), [(2, 0.004), (16, 0.004), (16, 0.0011), (64, 0.002), (8, 0.009)])
def test_the_search_finds_the_largest_n_that_holds_each_measured_once(cpus, per_sample_s):
    measure, calls = _machine(cpus, per_sample_s)
    found = search(measure, accelerator=ACCELERATOR, cpus=cpus, max_ranks=1000)
    assert found.score == analytic(cpus, per_sample_s)
    assert len(calls) == len(set(calls))  # each N at most once
    assert found.point(int(found.score)).holds and not found.point(int(found.score) + 1).holds
    assert found.predicted == math.floor(cpus / (per_sample_s * 0.9 * ACCELERATOR.demand) + 1e-9)
    assert len(calls) <= 5  # N = 1, the prediction, a correction and the neighbours


@pytest.mark.parametrize("wrong", [lambda n: 2, lambda n: 3 * n, lambda n: None])
def test_a_wrong_prediction_costs_runs_not_the_answer(monkeypatch, wrong):
    import feedbench.pipelines.harness.capacity_search as capacity_search

    measure, calls = _machine(16, 0.004)
    monkeypatch.setattr(capacity_search, "predict", lambda point, *a, **k: wrong(37))
    found = capacity_search.search(measure, accelerator=ACCELERATOR, cpus=16, max_ranks=1000)
    assert found.score == analytic(16, 0.004) and len(calls) == len(set(calls)) <= 14


def test_one_accelerator_that_misses_is_the_au_it_reached():
    measure, calls = _machine(1, 0.02)  # one CPU makes 50 of the 100 samples/s one accelerator takes
    found = search(measure, accelerator=ACCELERATOR, cpus=1)
    assert calls == [1] and found.score == pytest.approx(0.5) and found.predicted is None
    assert "these CPUs feed 0.50 of one" in found.reason


def test_max_ranks_bounds_the_search_and_a_failed_n_misses():
    measure, calls = _machine(64, 0.001)
    found = search(measure, accelerator=ACCELERATOR, cpus=64, max_ranks=5)
    assert found.score == 5 and max(calls) == 5 and "the most considered, 5" in found.reason
    measure, calls = _machine(16, 0.004, failing={44})  # a failed N misses, and says why
    found = search(measure, accelerator=ACCELERATOR, cpus=16, max_ranks=1000)
    assert found.score == 43 and "at 44 rank 0 failed: boom" in found.reason
    first, _ = _machine(16, 0.004, failing={1})
    found = search(first, accelerator=ACCELERATOR, cpus=16)
    assert math.isnan(found.score) and "did not run: boom" in found.reason


def test_a_resumed_search_measures_no_n_again():
    measure, calls = _machine(16, 0.004)
    first = search(measure, accelerator=ACCELERATOR, cpus=16, max_ranks=1000)
    again_measure, again = _machine(16, 0.004)
    second = search(again_measure, accelerator=ACCELERATOR, cpus=16, max_ranks=1000,
                    known={p.ranks: p for p in first.points})
    assert again == [] and second.score == first.score


def test_straggler_is_the_rank_of_lowest_au_and_a_failed_rank_first():
    ok = RunResult(ok=True, samples_per_s=1.0, accelerator_utilization=0.95)
    low = RunResult(ok=True, samples_per_s=1.0, accelerator_utilization=0.91)
    assert Point(3, 1, RanksRun((ok, low, ok)), 0.9).straggler == 1
    assert Point(3, 1, RanksRun((ok, low, RunResult.failed("x"))), 0.9).straggler == 2
    assert not Point(3, 1, RanksRun((ok, low, RunResult.failed("x"))), 0.9).holds


def test_profiles_and_a_custom_accelerator():
    h100 = parse_accelerator("h100-resnet50")
    assert (h100.batch_size, h100.step_s) == (400, 0.224) and h100.demand == pytest.approx(1785.7, abs=0.1)
    assert (PROFILES["a100-resnet50"].batch_size, PROFILES["a100-resnet50"].step_s) == (400, 0.435)
    assert (PROFILES["h100-unet3d"].batch_size, PROFILES["h100-unet3d"].step_s) == (7, 0.323)
    assert h100.workload == "emulated:224ms" and "resnet50_h100.yaml" in h100.source
    custom = parse_accelerator("step=0.5s,batch=64")
    assert (custom.name, custom.batch_size, custom.step_s, custom.workload) == ("custom", 64, 0.5, "emulated:500ms")
    assert parse_accelerator("batch=8,step=800us").step_s == pytest.approx(800e-6)


@pytest.mark.parametrize(("text", "message"), [
    ("b200", "unknown accelerator 'b200'"),
    ("step=224ms", "give both step=<time> and batch=<samples>"),
    ("step=fast,batch=4", "step 'fast' is not a time"),
    ("step=1ms,batch=4.5", "batch '4.5' is not a whole number"),
    ("step=1ms,batch=0", "batch must be"),
    ("step=1ms,size=4", "expected step=<time>,batch=<samples>"),
])
def test_a_bad_accelerator_is_one_line(text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_accelerator(text)
    assert "\n" not in str(caught.value)


def test_the_tuner_gives_each_rank_at_most_its_share_of_the_budget():
    assert [budget_share(8, n) for n in (1, 2, 3, 8, 9)] == [8, 4, 2, 1, 1]
    low = RunResult(ok=True, samples_per_s=1.0, accelerator_utilization=0.5)
    high = RunResult(ok=True, samples_per_s=1.0, accelerator_utilization=0.9)
    assert straggler_result(Point(2, 1, RanksRun((high, low)), 0.9)) is low


def test_the_tuner_chooses_the_fewest_workers_at_which_the_straggler_holds(monkeypatch):
    """Each worker makes 30% of what an accelerator takes: 3 workers a rank hold AU 0.9; the
    sweep's search finds 3 within the share of 8 CPUs, each count measured once."""
    import types

    import feedbench.pipelines.harness.capacity as capacity
    import feedbench.pipelines.loop.ranks as ranks_module

    measured = []

    def fake_run(specs):
        workers = specs[0]
        measured.append(workers)
        au = min(1.0, 0.3 * workers)
        results = tuple(RunResult(ok=True, samples_per_s=100 * au, accelerator_utilization=au - 0.01 * (r == 0),
                                  starvation=1 - au, batches_per_s=10 * au, compute_mean_s=0.1, input_bound="highly")
                        for r in range(len(specs)))
        return RanksRun(results)

    monkeypatch.setattr(capacity, "rank_specs", lambda settings, framework, ranks, workers: [workers] * ranks)
    monkeypatch.setattr(ranks_module, "run_ranks", fake_run)
    settings = types.SimpleNamespace(cpus=8)
    point = capacity.measure_ranks(settings, "torch", capacity.CapacityPlan(ACCELERATOR, target_au=0.85), 1)
    assert point.workers == 3 and point.holds and len(measured) == len(set(measured))
    assert [w for w, _, _ in point.tuning] == measured and 2 in measured  # the count below was checked
    fixed = capacity.measure_ranks(settings, "torch", capacity.CapacityPlan(ACCELERATOR, workers=2), 1)
    assert fixed.workers == 2 and fixed.tuning == ()
    assert capacity.measure_ranks(settings, "torch", capacity.CapacityPlan(ACCELERATOR), 8).workers == 1  # share 1


def test_predict_reads_the_cpu_seconds_a_sample():
    result = RunResult(ok=True, samples_per_s=100.0, accelerator_utilization=1.0, cpu_util=0.4)
    assert predict(Point(1, 1, RanksRun((result,)), 0.9), ACCELERATOR, 2, 0.9) == 5  # 2 / (0.004 x 90)
    assert predict(Point(1, 1, RanksRun((RunResult.failed("x"),)), 0.9), ACCELERATOR, 2, 0.9) is None
