"""The worker count to use, found with a few measured runs instead of one per count: the
algorithm of ``feedbench sweep``, framework-free (``measure`` does the running).

The rule (what the right count is):

- a count *reaches* the target when its accelerator utilization (AU) is at or above
  `target_au`; the recommendation is the smallest fixed count measured that reaches it;
- when no count measured reaches it, the recommendation is the smallest count whose
  throughput is within 5% of the best throughput measured (more workers buy under 5%);
- AUTOTUNE (tf.data) is a contender, never the default: it is recommended only when it
  reaches the target and no fixed count measured does, or, when nothing reaches the
  target, when its throughput is more than 5% above the best fixed count's. A fixed count
  wins ties because its cost is known and repeatable; AUTOTUNE sizes its own thread pool.
- a failed run is evidence (kept, and named in the reason) but is never recommended.

The search (a model, then confirmation):

1. Probe: measure the fewest workers allowed (1, or `min_workers` when higher; 0, the
   main-process mode, only by descending to it when `min_workers` is 0). When the probe
   already reaches the target, descend (step 4).
2. Predict: the probe gives one worker's production rate r1 = samples_per_s / workers (its
   per-sample cost is 1 / r1) and the workload's demand d = batch size / compute_mean_s
   (samples/s at AU 1), and the consumer's fed rate f = samples_per_s / (1 - starvation)
   (samples/s with the copy and loop overhead but no waiting: AU cannot pass f / d).
   n* = ceil(min(target_au * d, f) / (r1 * efficiency)), clamped to [probe, max_workers].
3. Confirm upwards: measure n*. While it misses the target, climb to the largest of n + 1,
   ceil(1.1 n) and ceil(goal / (samples_per_s(n) / n)), goal = min(target_au * d, f). When
   throughput per worker falls as workers are added (the usual, sublinear case) every count
   the last term skips misses too, so it never passes the answer; the 10% floor keeps the
   plateau test meaningful at high counts (one worker more than 20 adds under 5% even when
   scaling is linear). Climbing stops at the target, at `max_workers`, after two failed
   runs in a row, or at a plateau: throughput no more than 5% above the best so far, unless
   the target is nearer than two more such gains (close to it a small gain is all there
   is). At a plateau where the run still waits for batches (starvation 5% or more: the
   producer, not the consumer, is the limit) `max_workers` is measured too, so that "the
   best" is the best of the whole range, not of the counts the climb reached.
4. Confirm downwards: measure the count below the one the rule chooses; when that one
   qualifies too (the prediction overshot), interpolate between it and the largest count
   measured below it for where the deciding figure crosses its threshold, measure there,
   and check a guess that qualifies against the count below it again; after two guesses,
   bisect; until the count just below the choice is measured and does not qualify (or is
   below `min_workers`): the count recommended is always checked against the one below it.

With `exhaustive`, the search runs as above (its recommendation is the one reported, with
its number of runs), then every remaining count from `min_workers` to `max_workers` is
measured, and :class:`ExhaustiveCheck` says what the rule chooses from all of them, the
count of best throughput, and whether the search agrees.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.sweep_rule import (
    NEAR_BEST,
    Measure,
    Prediction,
    Recommendation,
    Workers,
    autotune_note,
    best_fixed,
    choose,
    choose_fixed,
    count_words,
    exhaustive_check,
    figures,
    reaches,
    reason,
    usable,
)
from feedbench.pipelines.loop.result import RunResult

log = logging.getLogger(__name__)







PLATEAU = 0.05  # a climb stops when a count adds no more than 5% to the best throughput


MIN_STEP = 0.10  # a climb adds at least 10% more workers: linear scaling then gains 2 x PLATEAU


PROBE_TRIES = 2  # counts tried as the probe before the search gives up on a model


FAILURES_IN_A_ROW = 2  # failed runs in a row that end a climb


GUESSES = 2  # interpolated guesses a descent makes before it bisects


_CEIL_SLACK = 1e-9  # 3.0000000001 workers is 3 (float noise), not 4




def recommend(measure: Measure, *, max_workers: int, target_au: float = 0.9, autotune: bool = False,
              exhaustive: bool = False, min_workers: int = 1, efficiency: float = 1.0) -> Recommendation:
    """Finds the smallest worker count that reaches `target_au` (module docstring: the rule
    and the search), measuring each count at most once.

    Args:
        measure: Runs one isolated measured run with ``workers=w`` (an int, or AUTOTUNE) and
            returns its RunResult; a failed run returns ``ok=False``. Its exceptions propagate.
        max_workers: The largest count considered.
        target_au: The accelerator utilization to reach, in (0, 1].
        autotune: Also measure AUTOTUNE (tf.data) as a contender.
        exhaustive: After the search, measure every remaining count and check the search.
        min_workers: The smallest count considered (0 admits torch's main-process mode).
        efficiency: The scaling per added worker the prediction assumes, in (0, 1].

    Raises:
        ConfigError: An argument out of range.
    """
    _check_arguments(max_workers=max_workers, min_workers=min_workers, target_au=target_au, efficiency=efficiency)
    runs = _Runs(measure)
    prediction = _search(runs, lo=min_workers, hi=max_workers, target=target_au, efficiency=efficiency)
    if autotune:
        runs.take(AUTOTUNE)
    choice, reached = choose(runs.results, target_au)
    search = dict(runs.results)
    check = None
    if exhaustive:
        for count in range(min_workers, max_workers + 1):
            runs.take(count)
        check = exhaustive_check(choice, runs.results, target_au)
    log.info("sweep: %s after %d runs", count_words(choice) if choice is not None else "nothing", len(search))
    return Recommendation(
        workers=choice, reached=reached, reason=reason(search, choice, reached, target_au, min_workers),
        target_au=target_au, prediction=prediction, evidence=tuple(runs.results.items()), runs=len(search),
        autotune=autotune_note(search, choice, target_au) if autotune else None, exhaustive=check,
    )


def _check_arguments(*, max_workers: int, min_workers: int, target_au: float, efficiency: float) -> None:
    for name, value in (("min_workers", min_workers), ("max_workers", max_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} (--{name.replace('_', '-')}) must be an integer >= 0, got {value!r}")
    if max_workers < min_workers:
        raise ConfigError(
            f"max_workers (--max-workers) {max_workers} is below min_workers (--min-workers) {min_workers}")
    # efficiency has no CLI flag: it is named as the argument it is, with what it means
    for name, value in (("target_au (--target-au)", target_au),
                        ("efficiency (the scaling per added worker)", efficiency)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ConfigError(f"{name} must be in (0, 1], got {value!r}")


class _Runs:
    """The runs of one sweep: each count measured at most once, kept in order of measurement."""

    def __init__(self, measure: Measure) -> None:
        self._measure = measure
        self.results: dict[Workers, RunResult] = {}

    def __contains__(self, workers: Workers) -> bool:
        return workers in self.results

    def take(self, workers: Workers) -> RunResult:
        if workers not in self.results:
            result = self._measure(workers)
            if not isinstance(result, RunResult):
                raise TypeError(f"measure({workers!r}) returned {type(result).__name__}, not a RunResult")
            self.results[workers] = result
            log.debug("sweep: %s -> %s", count_words(workers), figures(result))
        return self.results[workers]


def _search(runs: _Runs, *, lo: int, hi: int, target: float, efficiency: float) -> Prediction | None:
    """Probe, predict, climb, descend (module docstring); returns the model's prediction."""
    probe = _probe(runs, lo, hi)
    if probe is None:
        return None
    result = runs.results[probe]
    if reaches(result, target):
        prediction = _predict(result, probe, target=target, efficiency=efficiency, bounds=(probe, probe))
    else:
        prediction = _predict(result, probe, target=target, efficiency=efficiency, bounds=(probe, hi))
        goal = _goal(prediction, target)
        start = prediction.workers if prediction else probe
        if not reaches(runs.take(start), target):
            _climb(runs, start, hi=hi, target=target, goal=goal)
    _descend(runs, lo, target)
    return prediction


def _probe(runs: _Runs, lo: int, hi: int) -> int | None:
    """Measures the first count with workers (a failed one moves the probe up once)."""
    first = min(max(lo, 1), hi)
    for count in range(first, min(first + PROBE_TRIES, hi + 1)):
        if usable(runs.take(count)):
            return count
    return None


def _predict(result: RunResult, workers: int, *, target: float, efficiency: float,
             bounds: tuple[int, int]) -> Prediction | None:
    """n* = ceil(min(target * d, f) / (r1 * efficiency)), clamped to `bounds`."""
    demand = _demand(result)
    if demand is None or workers == 0:
        return None
    per_worker = result.samples_per_s / workers
    fed = result.samples_per_s / (1.0 - result.starvation) if 0 <= result.starvation < 1 else None
    goal = min(target * demand, fed) if fed is not None else target * demand
    count = _ceil(goal / (per_worker * efficiency))
    return Prediction(workers=min(max(count, bounds[0]), bounds[1]), probe_workers=workers,
                      sample_cost_s=1.0 / per_worker, cost_measured=result.input_bound in ("moderately", "highly"),
                      demand_samples_per_s=demand, fed_samples_per_s=fed,
                      efficiency=efficiency)


def _demand(result: RunResult) -> float | None:
    """Samples/s the workload takes at AU 1: batch size / compute_mean_s, or samples_per_s / AU."""
    if result.batches_per_s > 0 and result.compute_mean_s > 0:
        return result.samples_per_s / result.batches_per_s / result.compute_mean_s
    if result.accelerator_utilization > 0:
        return result.samples_per_s / result.accelerator_utilization
    return None


def _goal(prediction: Prediction | None, target: float) -> float | None:
    """Samples/s the climb aims at: the target's share of the demand, or all the consumer takes."""
    if prediction is None:
        return None
    goal = target * prediction.demand_samples_per_s
    return goal if prediction.fed_samples_per_s is None else min(goal, prediction.fed_samples_per_s)


def _climb(runs: _Runs, count: int, *, hi: int, target: float, goal: float | None) -> None:
    """From a count that misses, measures larger counts until one reaches, a plateau, `hi`
    or FAILURES_IN_A_ROW failed runs."""
    failures = 0 if usable(runs.results[count]) else 1
    while count < hi:
        best = best_fixed(runs.results)[1]
        count = min(hi, max(count + 1, _ceil(count * (1 + MIN_STEP)), _jump(runs.results[count], count, goal)))
        result = runs.take(count)
        if reaches(result, target):
            return
        if not usable(result):
            failures += 1
            if failures >= FAILURES_IN_A_ROW:
                return
            continue
        failures = 0
        if _plateau(result, best, target):
            log.debug("sweep: plateau at %s", count_words(count))
            if result.input_bound != "not":  # still waiting for batches: see what the most workers do
                runs.take(hi)
            return


def _plateau(result: RunResult, best_samples_per_s: float, target: float) -> bool:
    """Whether a climb should stop: the run gained no more than PLATEAU over the best before
    it, unless the target is nearer than two more such gains (a small gain is all that is
    left to gain close to the target)."""
    gain = result.samples_per_s / best_samples_per_s - 1 if best_samples_per_s > 0 else math.inf
    if gain > PLATEAU:
        return False
    need = target / result.accelerator_utilization - 1 if result.accelerator_utilization > 0 else math.inf
    return gain <= 0 or need > 2 * gain


def _jump(result: RunResult, count: int, goal: float | None) -> int:
    """The count that would meet `goal` at this count's throughput per worker (0: no model)."""
    if goal is None or count == 0 or not usable(result):
        return 0
    return _ceil(goal / (result.samples_per_s / count))


def _descend(runs: _Runs, lo: int, target: float) -> None:
    """Measures below the rule's choice until the count just below it is measured and does not
    qualify. The first step is the count just below; when that qualifies too, the choice
    overshot, and the next is interpolated (:func:`_guess`); a guess that qualifies is
    checked against the count below it again. After GUESSES guesses the rest is bisected:
    where throughput has flattened out, interpolation creeps down one count at a time."""
    below, guesses = True, 0
    while True:
        choice, _ = choose_fixed(runs.results, target)
        if choice is None or choice - 1 < lo or choice - 1 in runs:
            return
        floor = max((w for w in runs.results if w != AUTOTUNE and w < choice), default=lo - 1)
        if below:
            count = choice - 1
        elif guesses < GUESSES:
            count = _guess(runs.results, floor, choice, target)
        else:
            count = (floor + choice) // 2
        runs.take(count)
        qualified = choose_fixed(runs.results, target)[0] == count
        if below:
            below = False
        elif guesses < GUESSES:
            guesses += 1
            below = qualified


def _guess(results: Mapping[Workers, RunResult], floor: int, choice: int, target: float) -> int:
    """The count between `floor` (does not qualify, or is not measured) and `choice` where the
    deciding figure (AU when the choice reaches the target, else throughput against 95% of
    the best) crosses its threshold, by straight-line interpolation; (0 workers, 0) stands
    for a floor without figures."""
    reached = reaches(results[choice], target)
    figure = (lambda r: r.accelerator_utilization) if reached else (lambda r: r.samples_per_s)
    threshold = target if reached else (1 - NEAR_BEST) * best_fixed(results)[1]
    start, start_value = (floor, figure(results[floor])) if floor in results and usable(results[floor]) else (0, 0.0)
    end_value = figure(results[choice])
    if end_value > start_value and start < choice:
        count = _ceil(start + (threshold - start_value) / (end_value - start_value) * (choice - start))
    else:
        count = (floor + choice) // 2
    return min(max(count, floor + 1), choice - 1)


def _ceil(value: float) -> int:
    return math.ceil(value * (1 - _CEIL_SLACK))
