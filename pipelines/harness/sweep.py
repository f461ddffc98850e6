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

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.grid import AUTOTUNE
from feedbench.pipelines.loop.result import RunResult

log = logging.getLogger(__name__)

Workers = Union[int, str]  # a count, or AUTOTUNE
Measure = Callable[[Workers], RunResult]

NEAR_BEST = 0.05  # throughput within 5% of the best counts as the best
PLATEAU = 0.05  # a climb stops when a count adds no more than 5% to the best throughput
MIN_STEP = 0.10  # a climb adds at least 10% more workers: linear scaling then gains 2 x PLATEAU
PROBE_TRIES = 2  # counts tried as the probe before the search gives up on a model
FAILURES_IN_A_ROW = 2  # failed runs in a row that end a climb
GUESSES = 2  # interpolated guesses a descent makes before it bisects
_CEIL_SLACK = 1e-9  # 3.0000000001 workers is 3 (float noise), not 4


@dataclass(frozen=True)
class Prediction:
    """What the model read from the probe run.

    Attributes:
        workers: The predicted count, clamped to [probe, max_workers] (the probe itself when
            the probe already reaches the target).
        probe_workers: The count the model was read from.
        sample_cost_s: Seconds one worker spends per sample, 1 / r1; an upper bound when
            `cost_measured` is False.
        cost_measured: Whether the probe was input bound (starvation 5% or more), so that its
            throughput was the producer's; when not, the producer kept up and costs less.
        demand_samples_per_s: Samples/s the workload takes at AU 1, batch size / compute_mean_s.
        fed_samples_per_s: Samples/s the consumer takes when it never waits for a batch,
            samples_per_s / (1 - starvation); None when starvation was not measured.
        efficiency: The scaling per added worker the prediction assumed (1.0: linear).
    """

    workers: int
    probe_workers: int
    sample_cost_s: float
    cost_measured: bool
    demand_samples_per_s: float
    fed_samples_per_s: float | None
    efficiency: float


@dataclass(frozen=True)
class ExhaustiveCheck:
    """The search's recommendation held against every count measured.

    Attributes:
        workers: What the rule chooses from all the evidence.
        reached: Whether that choice reaches the target.
        best_workers: The fixed count of highest throughput (the smallest on a tie).
        best_samples_per_s: Its throughput.
        agrees: The search chose the same, or a count that also qualifies under all the
            evidence with throughput within 5% of the exhaustive choice's.
        runs: Runs in all, the search's included.
    """

    workers: Workers | None
    reached: bool
    best_workers: int | None
    best_samples_per_s: float
    agrees: bool
    runs: int


@dataclass(frozen=True)
class Recommendation:
    """The worker count to use, why, and the runs it rests on.

    Attributes:
        workers: The recommended count, AUTOTUNE, or None when no run succeeded.
        reached: Whether the recommendation reaches `target_au`.
        reason: One sentence: the deciding figures of the count and of the one below it.
        target_au: The AU aimed for.
        prediction: The model's reading of the probe (None when the probe gave none).
        evidence: Every measured (workers, RunResult), in order of measurement.
        runs: Runs the search took (AUTOTUNE included; not the exhaustive ones).
        autotune: How AUTOTUNE compared, one sentence (None when it was not measured).
        exhaustive: The check against every count (None unless asked for).
    """

    workers: Workers | None
    reached: bool
    reason: str
    target_au: float
    prediction: Prediction | None
    evidence: tuple[tuple[Workers, RunResult], ...]
    runs: int
    autotune: str | None = None
    exhaustive: ExhaustiveCheck | None = None

    def lines(self) -> list[str]:
        """The recommendation with its evidence, as lines of plain text for a terminal."""
        head = "no recommendation"
        if self.workers is not None:
            verdict = "reached" if self.reached else "not reached"
            head = f"{_count(self.workers)} (AU target {self.target_au:.2f} {verdict})"
        out = [f"recommendation: {head}", f"reason: {self.reason}"]
        if self.prediction is not None:
            out.append(f"prediction: {_describe_prediction(self.prediction)}")
        if self.autotune is not None:
            out.append(f"autotune: {self.autotune}")
        out.append(f"runs: {self.runs}")
        out.extend(_evidence_table(self.evidence))
        if self.exhaustive is not None:
            out.append(f"exhaustive: {_describe_check(self.exhaustive)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, JSON-ready (NaN becomes None); each run as RunResult.to_dict()."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["prediction"] = _plain(dataclasses.asdict(self.prediction)) if self.prediction else None
        data["exhaustive"] = _plain(dataclasses.asdict(self.exhaustive)) if self.exhaustive else None
        data["evidence"] = [{"workers": w, "result": r.to_dict()} for w, r in self.evidence]
        return data


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
    choice, reached = _choose(runs.results, target_au)
    search = dict(runs.results)
    check = None
    if exhaustive:
        for count in range(min_workers, max_workers + 1):
            runs.take(count)
        check = _check(choice, runs.results, target_au)
    log.info("sweep: %s after %d runs", _count(choice) if choice is not None else "nothing", len(search))
    return Recommendation(
        workers=choice, reached=reached, reason=_reason(search, choice, reached, target_au, min_workers),
        target_au=target_au, prediction=prediction, evidence=tuple(runs.results.items()), runs=len(search),
        autotune=_autotune_note(search, choice, target_au) if autotune else None, exhaustive=check,
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
            log.debug("sweep: %s -> %s", _count(workers), _figures(result))
        return self.results[workers]


# --- the search ---------------------------------------------------------------------------

def _search(runs: _Runs, *, lo: int, hi: int, target: float, efficiency: float) -> Prediction | None:
    """Probe, predict, climb, descend (module docstring); returns the model's prediction."""
    probe = _probe(runs, lo, hi)
    if probe is None:
        return None
    result = runs.results[probe]
    if _reaches(result, target):
        prediction = _predict(result, probe, target=target, efficiency=efficiency, bounds=(probe, probe))
    else:
        prediction = _predict(result, probe, target=target, efficiency=efficiency, bounds=(probe, hi))
        goal = _goal(prediction, target)
        start = prediction.workers if prediction else probe
        if not _reaches(runs.take(start), target):
            _climb(runs, start, hi=hi, target=target, goal=goal)
    _descend(runs, lo, target)
    return prediction


def _probe(runs: _Runs, lo: int, hi: int) -> int | None:
    """Measures the first count with workers (a failed one moves the probe up once)."""
    first = min(max(lo, 1), hi)
    for count in range(first, min(first + PROBE_TRIES, hi + 1)):
        if _usable(runs.take(count)):
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
    failures = 0 if _usable(runs.results[count]) else 1
    while count < hi:
        best = _best(runs.results)[1]
        count = min(hi, max(count + 1, _ceil(count * (1 + MIN_STEP)), _jump(runs.results[count], count, goal)))
        result = runs.take(count)
        if _reaches(result, target):
            return
        if not _usable(result):
            failures += 1
            if failures >= FAILURES_IN_A_ROW:
                return
            continue
        failures = 0
        if _plateau(result, best, target):
            log.debug("sweep: plateau at %s", _count(count))
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
    if goal is None or count == 0 or not _usable(result):
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
        choice, _ = _choose_fixed(runs.results, target)
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
        qualified = _choose_fixed(runs.results, target)[0] == count
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
    reached = _reaches(results[choice], target)
    figure = (lambda r: r.accelerator_utilization) if reached else (lambda r: r.samples_per_s)
    threshold = target if reached else (1 - NEAR_BEST) * _best(results)[1]
    start, start_value = (floor, figure(results[floor])) if floor in results and _usable(results[floor]) else (0, 0.0)
    end_value = figure(results[choice])
    if end_value > start_value and start < choice:
        count = _ceil(start + (threshold - start_value) / (end_value - start_value) * (choice - start))
    else:
        count = (floor + choice) // 2
    return min(max(count, floor + 1), choice - 1)


# --- the rule -----------------------------------------------------------------------------

def _usable(result: RunResult) -> bool:
    return result.ok and result.samples_per_s > 0  # NaN compares False


def _reaches(result: RunResult, target: float) -> bool:
    return _usable(result) and result.accelerator_utilization >= target


def _fixed(results: Mapping[Workers, RunResult]) -> dict[int, RunResult]:
    return {w: r for w, r in results.items() if w != AUTOTUNE and _usable(r)}


def _best(results: Mapping[Workers, RunResult]) -> tuple[int | None, float]:
    """The fixed count of highest throughput (the smallest on a tie) and that throughput."""
    fixed = _fixed(results)
    if not fixed:
        return None, 0.0
    top = max(r.samples_per_s for r in fixed.values())
    return min(w for w, r in fixed.items() if r.samples_per_s == top), top


def _choose_fixed(results: Mapping[Workers, RunResult], target: float) -> tuple[int | None, bool]:
    """The smallest count reaching the target, else the smallest within 5% of the best."""
    fixed = _fixed(results)
    reaching = [w for w, r in fixed.items() if r.accelerator_utilization >= target]
    if reaching:
        return min(reaching), True
    if not fixed:
        return None, False
    top = _best(results)[1]
    return min(w for w, r in fixed.items() if r.samples_per_s >= (1 - NEAR_BEST) * top), False


def _choose(results: Mapping[Workers, RunResult], target: float) -> tuple[Workers | None, bool]:
    """The rule, AUTOTUNE included (module docstring)."""
    choice, reached = _choose_fixed(results, target)
    auto = results.get(AUTOTUNE)
    if reached or auto is None or not _usable(auto):
        return choice, reached
    if _reaches(auto, target):
        return AUTOTUNE, True
    if choice is None or auto.samples_per_s > (1 + NEAR_BEST) * _best(results)[1]:
        return AUTOTUNE, False
    return choice, False


def _check(choice: Workers | None, results: Mapping[Workers, RunResult], target: float) -> ExhaustiveCheck:
    """The search's choice held against the rule applied to every run."""
    full, reached = _choose(results, target)
    best_workers, top = _best(results)
    agrees = choice == full
    if not agrees and choice is not None and full is not None:
        mine, theirs = results[choice], results[full]
        qualifies = _reaches(mine, target) if reached else mine.samples_per_s >= (1 - NEAR_BEST) * top
        agrees = qualifies and abs(mine.samples_per_s - theirs.samples_per_s) <= NEAR_BEST * theirs.samples_per_s
    return ExhaustiveCheck(workers=full, reached=reached, best_workers=best_workers, best_samples_per_s=top,
                           agrees=agrees, runs=len(results))


# --- words --------------------------------------------------------------------------------

def _reason(results: Mapping[Workers, RunResult], choice: Workers | None, reached: bool, target: float,
            lo: int) -> str:
    """One sentence: the chosen count's deciding figures and those of the count below it."""
    if choice is None:
        last = next(reversed(results))
        return f"no run succeeded ({len(results)} runs; {_count(last)}: {results[last].error})"
    result = results[choice]
    best_workers, top = _best(results)
    if choice == AUTOTUNE:
        rival = f"best fixed: {_count(best_workers)}, {_figures(results[best_workers])}" if best_workers is not None \
            else "no fixed count succeeded"
        if reached:
            return (f"autotune reaches AU {result.accelerator_utilization:.2f} >= {target:.2f}; "
                    f"no fixed count measured does ({rival})")
        return (f"no count measured reaches AU {target:.2f}; autotune gives {_figures(result)}, "
                f"more than 5% above every fixed count ({rival})")
    if reached:
        head = f"{_count(choice)} {_verb(choice, 'reach')} AU {result.accelerator_utilization:.2f} >= {target:.2f}"
    elif choice == best_workers:
        head = f"no count measured reaches AU {target:.2f}; {_count(choice)} {_verb(choice, 'give')} the best " \
               f"throughput, {_figures(result)}"
    else:
        head = f"no count measured reaches AU {target:.2f}; {_count(choice)} {_verb(choice, 'give')} " \
               f"{_figures(result)}, within 5% of the best, {top:,.0f} at {_count(best_workers)}"
    return f"{head}; {_below(results, choice, reached, lo)}"


def _below(results: Mapping[Workers, RunResult], choice: int, reached: bool, lo: int) -> str:
    """What the count below the choice did (why it was not chosen)."""
    below = choice - 1
    if below < lo:
        return f"{_count(choice)} {'is' if choice == 1 else 'are'} the fewest allowed"
    if below not in results:
        return f"{_count(below)} not measured"
    result = results[below]
    if not _usable(result):
        return f"{_count(below)} failed ({result.error})"
    if reached:
        return f"{_count(below)} {_verb(below, 'reach')} {result.accelerator_utilization:.2f}"
    return f"{_count(below)} {_verb(below, 'give')} {result.samples_per_s:,.0f}, more than 5% below the best"


def _autotune_note(results: Mapping[Workers, RunResult], choice: Workers | None, target: float) -> str:
    auto = results[AUTOTUNE]
    if not _usable(auto):
        return f"failed ({auto.error})"
    verdict = "reaches" if auto.accelerator_utilization >= target else "misses"
    versus = choice if choice not in (None, AUTOTUNE) else _best(results)[0]
    tail = "" if versus is None else f"; {_count(versus)}: {_figures(results[versus])}"
    return f"{_figures(auto)}, {verdict} AU {target:.2f}{tail}"


def _describe_prediction(p: Prediction) -> str:
    fed = "" if p.fed_samples_per_s is None else f", {p.fed_samples_per_s:,.0f} when never kept waiting"
    least = "" if p.cost_measured else "at least "
    return (f"{_count(p.workers)}: one worker makes {least}{1 / p.sample_cost_s:,.0f} samples/s "
            f"({p.sample_cost_s * 1e3:.3g} ms per sample, read at {_count(p.probe_workers)}, efficiency "
            f"{p.efficiency:.2f}); the workload takes {p.demand_samples_per_s:,.0f} samples/s at AU 1{fed}")


def _describe_check(c: ExhaustiveCheck) -> str:
    choice = "nothing" if c.workers is None else _count(c.workers)
    best = "no fixed count succeeded" if c.best_workers is None else \
        f"best throughput {c.best_samples_per_s:,.0f} samples/s at {_count(c.best_workers)}"
    return f"{c.runs} runs; all of them choose {choice} ({best}); the search {'agrees' if c.agrees else 'disagrees'}"


def _evidence_table(evidence: tuple[tuple[Workers, RunResult], ...]) -> list[str]:
    out = [f"  {'workers':>8}  {'samples/s':>10}  {'AU':>5}  {'starved':>7}"]
    for workers, r in evidence:
        if _usable(r):
            out.append(f"  {workers!s:>8}  {r.samples_per_s:>10,.0f}  {r.accelerator_utilization:>5.2f}  "
                       f"{r.starvation:>7.2f}")
        else:
            out.append(f"  {workers!s:>8}  failed: {r.error}")
    return out


def _figures(result: RunResult) -> str:
    if not _usable(result):
        return f"failed ({result.error})"
    return f"{result.samples_per_s:,.0f} samples/s (AU {result.accelerator_utilization:.2f})"


def _count(workers: Workers) -> str:
    if workers == AUTOTUNE:
        return "autotune"
    return f"{workers} worker" if workers == 1 else f"{workers} workers"


def _verb(workers: Workers, verb: str) -> str:
    """"reach" -> "reaches", "give" -> "gives" after one worker or autotune."""
    if workers not in (1, AUTOTUNE):
        return verb
    return f"{verb}es" if verb.endswith("h") else f"{verb}s"


def _ceil(value: float) -> int:
    return math.ceil(value * (1 - _CEIL_SLACK))


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}
