"""The sweep's recommendation against an analytic ground truth.

A fake `measure` stands for a producer and a consumer of known rates: n workers make
producer(n) samples/s (r1 * n, or Amdahl-sublinear), the consumer takes at most `fed`
samples/s and does AU 1 at `demand` samples/s, so throughput(n) = min(producer(n), fed)
and AU(n) = throughput / demand. The right answer then follows from the rule by checking
every count (and, where scaling is linear, in closed form: the smallest n with
n * r1 >= target * demand).
"""

import dataclasses
import json
import math
import random
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from feedbench.pipelines import ConfigError, RunResult
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.harness.sweep import Recommendation, recommend


@dataclass
class Rig:
    """A producer of r1 samples/s per worker (Amdahl's `serial` fraction slows added
    workers) feeding a consumer of `demand` samples/s at AU 1, capped at `fed` (its copy and
    loop overhead; default: no overhead)."""

    r1: float
    demand: float
    fed: float | None = None
    serial: float = 0.0
    batch: int = 64
    fail: frozenset = frozenset()
    autotune_samples_per_s: float | None = None
    calls: list = field(default_factory=list)

    @property
    def cap(self) -> float:
        return self.demand if self.fed is None else self.fed

    def throughput(self, workers) -> float:
        if workers == AUTOTUNE:
            return min(self.autotune_samples_per_s, self.cap)
        if workers == 0:  # the main process makes each batch, then the step runs: one after the other
            return 1 / (1 / self.r1 + 1 / self.cap)
        return min(self.r1 * workers / (1 + self.serial * (workers - 1)), self.cap)

    def __call__(self, workers) -> RunResult:
        self.calls.append(workers)
        if workers in self.fail:
            return RunResult.failed("the loader's workers were killed (SIGKILL)", config={"workers": workers})
        rate, batch = self.throughput(workers), self.batch
        return RunResult(samples_per_s=rate, batches_per_s=rate / batch, accelerator_utilization=rate / self.demand,
                         starvation=max(0.0, 1 - rate / self.cap), compute_mean_s=batch / self.demand,
                         wait_mean_s=max(0.0, batch / rate - batch / self.cap), steps=50, samples=50 * batch,
                         window_s=50 * batch / rate, config={"workers": workers})

    def truth(self, lo: int, hi: int, target: float):
        """The rule applied to every count: (workers, reached)."""
        counts = [n for n in range(lo, hi + 1) if n not in self.fail]
        reaching = [n for n in counts if self.throughput(n) / self.demand >= target]
        if reaching:
            return reaching[0], True
        best = max(self.throughput(n) for n in counts)
        return next(n for n in counts if self.throughput(n) >= 0.95 * best), False


def _assert_each_count_measured_once(rig: Rig, rec: Recommendation) -> None:
    assert len(rig.calls) == len(set(rig.calls))
    assert [w for w, _ in rec.evidence] == rig.calls


@pytest.mark.parametrize(("r1", "demand", "target", "hi", "closed_form"), [
    (250.0, 1000.0, 0.9, 16, 4),      # 3.6 -> 4
    (110.0, 1000.0, 0.9, 16, 9),      # 8.2 -> 9
    (37.0, 500.0, 0.75, 16, 11),      # 10.1 -> 11
    (300.0, 1000.0, 0.95, 8, 4),      # 3.2 -> 4
    (1200.0, 1000.0, 0.9, 16, 1),     # one worker already feeds it
    (30.0, 4000.0, 0.5, 80, 67),      # 66.7 -> 67: a high count
])
def test_linear_scaling_finds_the_closed_form_count(r1, demand, target, hi, closed_form):
    rig = Rig(r1=r1, demand=demand)
    rec = recommend(rig, max_workers=hi, target_au=target)
    assert rig.truth(1, hi, target) == (closed_form, True)
    assert (rec.workers, rec.reached) == (closed_form, True)
    assert rec.runs == len(rig.calls) <= 3  # probe, prediction, the count below
    assert rec.prediction.workers == closed_form
    if closed_form > 1:
        assert rec.prediction.sample_cost_s == pytest.approx(1 / r1) and rec.prediction.cost_measured
    else:  # the producer kept up: its cost is known only to be at most what the probe showed
        assert rec.prediction.sample_cost_s == pytest.approx(1 / demand) and not rec.prediction.cost_measured
    assert rec.prediction.demand_samples_per_s == pytest.approx(demand)
    _assert_each_count_measured_once(rig, rec)


@pytest.mark.parametrize(("r1", "hi", "closed_form"), [
    (50.0, 16, 16),   # best 800 at 16; 15 workers give 750 < 0.95 * 800
    (20.0, 30, 29),   # best 600 at 30; 570 needs 28.5 workers
])
def test_target_out_of_reach_gives_the_smallest_count_within_5_percent_of_the_best(r1, hi, closed_form):
    rig = Rig(r1=r1, demand=1000.0)
    rec = recommend(rig, max_workers=hi, target_au=0.9)
    assert rig.truth(1, hi, 0.9) == (closed_form, False)
    assert (rec.workers, rec.reached) == (closed_form, False)
    assert "no count measured reaches AU 0.90" in rec.reason
    assert rec.runs <= 5
    _assert_each_count_measured_once(rig, rec)


def test_a_consumer_that_caps_au_below_the_target_is_fed_not_chased():
    # The copy and loop overhead hold AU at 0.85: no count reaches 0.9; 4 workers feed the consumer.
    rig = Rig(r1=250.0, demand=1000.0, fed=850.0)
    rec = recommend(rig, max_workers=16, target_au=0.9)
    assert rig.truth(1, 16, 0.9) == (4, False)
    assert (rec.workers, rec.reached) == (4, False)
    assert rec.prediction.workers == 4  # ceil(min(900, 850) / 250)
    assert rec.prediction.fed_samples_per_s == pytest.approx(850.0)
    assert rec.runs <= 4  # 1, 4, 5 (plateau), 3


def test_target_reached_by_one_worker_takes_one_run_and_leaves_zero_out():
    rig = Rig(r1=5000.0, demand=1000.0)
    rec = recommend(rig, max_workers=16)
    assert (rec.workers, rec.reached, rec.runs) == (1, True, 1)
    assert rig.calls == [1]
    assert rec.reason == "1 worker reaches AU 1.00 >= 0.90; 1 worker is the fewest allowed"


@pytest.mark.parametrize(("r1", "expected"), [(5000.0, 1), (50000.0, 0)])
def test_min_workers_zero_descends_to_the_main_process_mode(r1, expected):
    # workers=0: making a batch and the step alternate, 1/(1/r1 + 1/demand): 833/s or 980/s.
    rig = Rig(r1=r1, demand=1000.0)
    rec = recommend(rig, max_workers=16, min_workers=0)
    assert rig.truth(0, 16, 0.9) == (expected, True)
    assert rec.workers == expected
    assert rig.calls == [1, 0]


def test_a_range_of_only_the_main_process_takes_one_run():
    rig = Rig(r1=250.0, demand=1000.0)
    rec = recommend(rig, max_workers=0, min_workers=0)
    assert (rec.workers, rec.reached, rig.calls) == (0, False, [0])
    assert rec.prediction is None  # no per-worker rate without workers


def test_without_compute_times_the_demand_is_read_from_au():
    class NoCompute(Rig):
        def __call__(self, workers):
            return dataclasses.replace(super().__call__(workers), compute_mean_s=math.nan)

    rig = NoCompute(r1=250.0, demand=1000.0)
    rec = recommend(rig, max_workers=16)
    assert rec.prediction.demand_samples_per_s == pytest.approx(1000.0)
    assert (rec.workers, rig.calls) == (4, [1, 4, 3])


def test_sublinear_scaling_climbs_past_a_low_prediction():
    # Amdahl, serial 0.1: 1,800 samples/s need 14 workers where linear scaling says 6.
    rig = Rig(r1=300.0, demand=2000.0, serial=0.1)
    rec = recommend(rig, max_workers=16)
    assert rig.truth(1, 16, 0.9) == (14, True)
    assert rec.prediction.workers == 6
    assert (rec.workers, rec.reached) == (14, True)
    assert rec.runs < 16 / 2
    assert "14 workers reach AU 0.91 >= 0.90; 13 workers reach 0.89" == rec.reason
    _assert_each_count_measured_once(rig, rec)


def test_an_efficiency_below_one_predicts_more_workers():
    rig = Rig(r1=250.0, demand=1000.0)
    rec = recommend(rig, max_workers=16, efficiency=0.5)
    assert rec.prediction.workers == 8  # ceil(900 / (250 * 0.5))
    assert rec.workers == 4  # the descent still finds the smallest
    assert rig.calls == [1, 8, 7, 6, 5, 4, 3]


def test_a_producer_that_flattens_out_is_checked_at_max_workers_before_the_best_is_named():
    # Amdahl, serial 0.2: 300 * n / (1 + 0.2 (n - 1)) tends to 1,500 samples/s; 0.9 of 2,000 is
    # out of reach. The climb flattens out at 40 workers while still starved, so 64 is measured:
    # the best is 1,412 at 64, and 34 is the smallest within 5% of it (33 gives 1,338 < 1,341).
    rig = Rig(r1=300.0, demand=2000.0, serial=0.2)
    rec = recommend(rig, max_workers=64)
    assert rig.truth(1, 64, 0.9) == (34, False)
    assert (rec.workers, rec.reached) == (34, False)
    assert rig.calls == [1, 6, 12, 20, 29, 40, 64, 39, 35, 34, 33]
    _assert_each_count_measured_once(rig, rec)


def test_a_plateau_of_a_fed_consumer_does_not_measure_max_workers():
    # AU held at 0.85 by the consumer: at the plateau nothing waits for batches any more.
    rig = Rig(r1=250.0, demand=1000.0, fed=850.0)
    recommend(rig, max_workers=64)
    assert 64 not in rig.calls and max(rig.calls) == 5


def test_near_the_target_a_small_gain_is_not_a_plateau():
    # Amdahl, serial 0.4: from 6 workers on each one adds under 5%, but 8 reach AU 1.0.
    rig = Rig(r1=1106.5, demand=2287.9, serial=0.4)
    rec = recommend(rig, max_workers=16, target_au=1.0)
    assert rig.truth(1, 16, 1.0) == (8, True)
    assert rig.throughput(7) < 1.05 * rig.throughput(6)
    assert (rec.workers, rec.reached) == (8, True)


@pytest.mark.parametrize("rig", [
    Rig(r1=250.0, demand=1000.0),
    Rig(r1=37.0, demand=500.0),
    Rig(r1=50.0, demand=1000.0),
    Rig(r1=300.0, demand=2000.0, serial=0.1),
    Rig(r1=300.0, demand=2000.0, serial=0.2),
    Rig(r1=250.0, demand=1000.0, fed=850.0),
    Rig(r1=5000.0, demand=1000.0),
], ids=["linear", "linear-high", "out-of-reach", "amdahl", "amdahl-flat", "capped", "one-worker"])
def test_exhaustive_agrees_with_the_search_and_measures_every_count_once(rig):
    rec = recommend(rig, max_workers=16, exhaustive=True)
    check = rec.exhaustive
    assert sorted(rig.calls) == list(range(1, 17))
    _assert_each_count_measured_once(rig, rec)
    assert (check.workers, check.reached) == rig.truth(1, 16, 0.9)
    assert rec.workers == check.workers and check.agrees
    assert check.runs == 16 and rec.runs < 16
    top = max(rig.throughput(n) for n in range(1, 17))
    assert check.best_samples_per_s == top and rig.throughput(check.best_workers) == top
    assert rig.throughput(check.best_workers - 1) < top


@pytest.mark.parametrize(("spike", "agrees"), [(960.0, True), (940.0, False)])
def test_exhaustive_finds_what_the_search_skipped_and_says_whether_it_matters(spike, agrees):
    # 2 workers reach AU 0.9 by a fluke (a spike the model cannot know); 3 do not. The search
    # stops at 4 (3 misses); every count says 2. 4 workers give 1,000 samples/s: within 5% of
    # 960 (agrees), more than 5% above 940 (does not).
    class Spike(Rig):
        def throughput(self, workers):
            return spike if workers == 2 else super().throughput(workers)

    rig = Spike(r1=250.0, demand=1000.0)
    rec = recommend(rig, max_workers=8, exhaustive=True)
    assert rec.workers == 4 and rec.runs == 3
    assert (rec.exhaustive.workers, rec.exhaustive.reached, rec.exhaustive.agrees) == (2, True, agrees)
    assert rec.lines()[-1].endswith("agrees" if agrees else "disagrees")


def test_random_producers_and_consumers_get_the_rule_s_answer_in_a_fraction_of_the_runs():
    rng = random.Random(7)
    exact, runs, counts = 0, 0, 0
    for _ in range(400):
        rig = Rig(r1=rng.uniform(20, 3000), demand=rng.uniform(500, 5000), serial=rng.choice([0, 0.05, 0.1, 0.2, 0.4]))
        if rng.random() < 0.3:
            rig.fed = rig.demand * rng.uniform(0.6, 0.99)
        hi, lo, target = rng.choice([4, 16, 64]), rng.choice([0, 1, 2]), rng.choice([0.5, 0.9, 0.95, 1.0])
        rec = recommend(rig, max_workers=hi, min_workers=lo, target_au=target, efficiency=rng.choice([1.0, 0.7]))
        truth, reached = rig.truth(lo, hi, target)
        _assert_each_count_measured_once(rig, rec)
        runs, counts = runs + rec.runs, counts + hi - lo + 1
        if (rec.workers, rec.reached) == (truth, reached):
            exact += 1
        else:  # only where the 95% line falls between two counts' figures by a hair
            best = max(rig.throughput(n) for n in range(lo, hi + 1))
            assert not reached and not rec.reached
            assert abs(rig.throughput(rec.workers) - 0.95 * best) < 0.005 * best
    assert exact >= 0.99 * 400
    assert runs < 0.25 * counts


def test_failed_runs_are_recorded_and_never_chosen():
    rig = Rig(r1=250.0, demand=1000.0, fail=frozenset({4}))
    rec = recommend(rig, max_workers=16)
    assert rig.truth(1, 16, 0.9) == (5, True)
    assert rec.workers == 5
    failed = [w for w, r in rec.evidence if not r.ok]
    assert failed == [4]
    assert rec.reason == ("5 workers reach AU 1.00 >= 0.90; 4 workers failed "
                          "(the loader's workers were killed (SIGKILL))")
    _assert_each_count_measured_once(rig, rec)


def test_a_failed_probe_moves_the_probe_up():
    rig = Rig(r1=250.0, demand=1000.0, fail=frozenset({1}))
    rec = recommend(rig, max_workers=16)
    assert rec.workers == 4 and rec.prediction.probe_workers == 2
    assert rig.calls[:2] == [1, 2]


def test_when_every_run_fails_nothing_is_recommended_and_the_reason_says_why():
    rig = Rig(r1=250.0, demand=1000.0, fail=frozenset(range(0, 17)))
    rec = recommend(rig, max_workers=16)
    assert rec.workers is None and not rec.reached and rec.prediction is None
    assert rec.runs == 2  # the probe and its one retry
    assert rec.reason.startswith("no run succeeded (2 runs; 2 workers: the loader's workers were killed")
    assert rec.lines()[0] == "recommendation: no recommendation"


def test_autotune_is_a_contender_that_loses_ties_to_a_fixed_count():
    rig = Rig(r1=250.0, demand=1000.0, autotune_samples_per_s=990.0)
    rec = recommend(rig, max_workers=16, autotune=True)
    assert rec.workers == 4 and rig.calls.count(AUTOTUNE) == 1
    assert rec.evidence[-1][0] == AUTOTUNE
    assert rec.autotune == ("990 samples/s (AU 0.99), reaches AU 0.90; "
                            "4 workers: 1,000 samples/s (AU 1.00)")


def test_autotune_is_chosen_when_it_reaches_the_target_and_no_fixed_count_does():
    rig = Rig(r1=50.0, demand=1000.0, autotune_samples_per_s=950.0)
    rec = recommend(rig, max_workers=16, autotune=True)
    assert (rec.workers, rec.reached) == (AUTOTUNE, True)
    assert rec.reason.startswith("autotune reaches AU 0.95 >= 0.90; no fixed count measured does "
                                 "(best fixed: 16 workers, 800 samples/s")


@pytest.mark.parametrize(("autotune_rate", "expected"), [(850.0, AUTOTUNE), (820.0, 16)])
def test_autotune_out_of_reach_must_beat_the_best_fixed_count_by_more_than_5_percent(autotune_rate, expected):
    rig = Rig(r1=50.0, demand=1000.0, autotune_samples_per_s=autotune_rate)  # best fixed: 800 at 16
    rec = recommend(rig, max_workers=16, autotune=True)
    assert (rec.workers, rec.reached) == (expected, False)


def test_to_dict_is_json_and_lines_show_the_evidence():
    rig = Rig(r1=250.0, demand=1000.0, fail=frozenset({3}))
    rec = recommend(rig, max_workers=8, exhaustive=True)
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["workers"] == 4 and data["reached"] is True and data["runs"] == rec.runs
    assert [e["workers"] for e in data["evidence"]] == rig.calls
    assert data["evidence"][0]["result"]["samples_per_s"] == 250.0
    assert data["prediction"]["workers"] == 4 and data["exhaustive"]["agrees"] is True
    lines = rec.lines()
    assert lines[0] == "recommendation: 4 workers (AU target 0.90 reached)"
    assert any(line.split() == ["3", "failed:", "the", "loader's", "workers", "were", "killed", "(SIGKILL)"]
               for line in lines)
    assert any(line.split()[:4] == ["4", "1,000", "1.00", "0.00"] for line in lines)
    assert lines[-1].startswith("exhaustive: 8 runs; all of them choose 4 workers")


def test_measure_is_never_called_twice_for_one_count_even_when_the_search_revisits_it():
    rig = Rig(r1=300.0, demand=2000.0, serial=0.1, autotune_samples_per_s=1000.0)
    rec = recommend(rig, max_workers=16, min_workers=0, autotune=True, exhaustive=True)
    _assert_each_count_measured_once(rig, rec)
    assert sorted(rig.calls, key=str) == sorted([*range(0, 17), AUTOTUNE], key=str)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target_au": 1.5}, "target_au (--target-au) must be in (0, 1], got 1.5"),
    ({"target_au": 0.0}, "target_au (--target-au) must be in (0, 1], got 0.0"),
    ({"target_au": math.nan}, "target_au (--target-au) must be in (0, 1], got nan"),
    ({"max_workers": 2, "min_workers": 3}, "max_workers (--max-workers) 2 is below min_workers (--min-workers) 3"),
    ({"min_workers": -1}, "min_workers (--min-workers) must be an integer >= 0, got -1"),
    ({"max_workers": 2.5}, "max_workers (--max-workers) must be an integer >= 0, got 2.5"),
    ({"efficiency": 0}, "efficiency (the scaling per added worker) must be in (0, 1], got 0"),
])
def test_bad_arguments_raise_config_error_with_one_line(kwargs, message):
    rig = Rig(r1=250.0, demand=1000.0)
    with pytest.raises(ConfigError) as info:
        recommend(rig, **{"max_workers": 16, **kwargs})
    assert str(info.value) == message and "\n" not in message
    assert rig.calls == []


def test_a_measure_that_returns_something_else_is_a_type_error():
    with pytest.raises(TypeError, match=r"measure\(1\) returned dict, not a RunResult"):
        recommend(lambda w: {}, max_workers=4)


def test_the_module_imports_neither_torch_nor_tensorflow():
    code = ("import sys, feedbench.pipelines.harness.sweep; "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
