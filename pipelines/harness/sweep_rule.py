"""The sweep's rule: which measured worker count to recommend, and why, in words.

See :mod:`feedbench.pipelines.harness.sweep` for the rule and the search that gathers its
evidence; this module holds the rule itself (:func:`choose`), the recommendation it makes
(:class:`Recommendation`) and its wording.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.loop.result import RunResult

Workers = int | str  # a count, or AUTOTUNE

Measure = Callable[[Workers], RunResult]

NEAR_BEST = 0.05  # throughput within 5% of the best counts as the best

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
            head = f"{count_words(self.workers)} (AU target {self.target_au:.2f} {verdict})"
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


def usable(result: RunResult) -> bool:
    return result.ok and result.samples_per_s > 0  # NaN compares False


def reaches(result: RunResult, target: float) -> bool:
    return usable(result) and result.accelerator_utilization >= target


def _fixed(results: Mapping[Workers, RunResult]) -> dict[int, RunResult]:
    return {w: r for w, r in results.items() if w != AUTOTUNE and usable(r)}


def best_fixed(results: Mapping[Workers, RunResult]) -> tuple[int | None, float]:
    """The fixed count of highest throughput (the smallest on a tie) and that throughput."""
    fixed = _fixed(results)
    if not fixed:
        return None, 0.0
    top = max(r.samples_per_s for r in fixed.values())
    return min(w for w, r in fixed.items() if r.samples_per_s == top), top


def choose_fixed(results: Mapping[Workers, RunResult], target: float) -> tuple[int | None, bool]:
    """The smallest count reaching the target, else the smallest within 5% of the best."""
    fixed = _fixed(results)
    reaching = [w for w, r in fixed.items() if r.accelerator_utilization >= target]
    if reaching:
        return min(reaching), True
    if not fixed:
        return None, False
    top = best_fixed(results)[1]
    return min(w for w, r in fixed.items() if r.samples_per_s >= (1 - NEAR_BEST) * top), False


def choose(results: Mapping[Workers, RunResult], target: float) -> tuple[Workers | None, bool]:
    """The rule, AUTOTUNE included (module docstring)."""
    choice, reached = choose_fixed(results, target)
    auto = results.get(AUTOTUNE)
    if reached or auto is None or not usable(auto):
        return choice, reached
    if reaches(auto, target):
        return AUTOTUNE, True
    if choice is None or auto.samples_per_s > (1 + NEAR_BEST) * best_fixed(results)[1]:
        return AUTOTUNE, False
    return choice, False


def exhaustive_check(choice: Workers | None, results: Mapping[Workers, RunResult], target: float) -> ExhaustiveCheck:
    """The search's choice held against the rule applied to every run."""
    full, reached = choose(results, target)
    best_workers, top = best_fixed(results)
    agrees = choice == full
    if not agrees and choice is not None and full is not None:
        mine, theirs = results[choice], results[full]
        qualifies = reaches(mine, target) if reached else mine.samples_per_s >= (1 - NEAR_BEST) * top
        agrees = qualifies and abs(mine.samples_per_s - theirs.samples_per_s) <= NEAR_BEST * theirs.samples_per_s
    return ExhaustiveCheck(workers=full, reached=reached, best_workers=best_workers, best_samples_per_s=top,
                           agrees=agrees, runs=len(results))


def reason(results: Mapping[Workers, RunResult], choice: Workers | None, reached: bool, target: float,
            lo: int) -> str:
    """One sentence: the chosen count's deciding figures and those of the count below it."""
    if choice is None:
        last = next(reversed(results))
        return f"no run succeeded ({len(results)} runs; {count_words(last)}: {results[last].error})"
    result = results[choice]
    best_workers, top = best_fixed(results)
    if choice == AUTOTUNE:
        rival = f"best fixed: {count_words(best_workers)}, {figures(results[best_workers])}" \
            if best_workers is not None else "no fixed count succeeded"
        if reached:
            return (f"autotune reaches AU {result.accelerator_utilization:.2f} >= {target:.2f}; "
                    f"no fixed count measured does ({rival})")
        return (f"no count measured reaches AU {target:.2f}; autotune gives {figures(result)}, "
                f"more than 5% above every fixed count ({rival})")
    if reached:
        head = f"{count_words(choice)} {_verb(choice, 'reach')} AU {result.accelerator_utilization:.2f} >= {target:.2f}"
    elif choice == best_workers:
        head = f"no count measured reaches AU {target:.2f}; {count_words(choice)} {_verb(choice, 'give')} the best " \
               f"throughput, {figures(result)}"
    else:
        head = f"no count measured reaches AU {target:.2f}; {count_words(choice)} {_verb(choice, 'give')} " \
               f"{figures(result)}, within 5% of the best, {top:,.0f} at {count_words(best_workers)}"
    return f"{head}; {_below(results, choice, reached, lo)}"


def _below(results: Mapping[Workers, RunResult], choice: int, reached: bool, lo: int) -> str:
    """What the count below the choice did (why it was not chosen)."""
    below = choice - 1
    if below < lo:
        return f"{count_words(choice)} {'is' if choice == 1 else 'are'} the fewest allowed"
    if below not in results:
        return f"{count_words(below)} not measured"
    result = results[below]
    if not usable(result):
        return f"{count_words(below)} failed ({result.error})"
    if reached:
        return f"{count_words(below)} {_verb(below, 'reach')} {result.accelerator_utilization:.2f}"
    return f"{count_words(below)} {_verb(below, 'give')} {result.samples_per_s:,.0f}, more than 5% below the best"


def autotune_note(results: Mapping[Workers, RunResult], choice: Workers | None, target: float) -> str:
    auto = results[AUTOTUNE]
    if not usable(auto):
        return f"failed ({auto.error})"
    verdict = "reaches" if auto.accelerator_utilization >= target else "misses"
    versus = choice if choice not in (None, AUTOTUNE) else best_fixed(results)[0]
    tail = "" if versus is None else f"; {count_words(versus)}: {figures(results[versus])}"
    return f"{figures(auto)}, {verdict} AU {target:.2f}{tail}"


def _describe_prediction(p: Prediction) -> str:
    fed = "" if p.fed_samples_per_s is None else f", {p.fed_samples_per_s:,.0f} when never kept waiting"
    least = "" if p.cost_measured else "at least "
    return (f"{count_words(p.workers)}: one worker makes {least}{1 / p.sample_cost_s:,.0f} samples/s "
            f"({p.sample_cost_s * 1e3:.3g} ms per sample, read at {count_words(p.probe_workers)}, efficiency "
            f"{p.efficiency:.2f}); the workload takes {p.demand_samples_per_s:,.0f} samples/s at AU 1{fed}")


def _describe_check(c: ExhaustiveCheck) -> str:
    choice = "nothing" if c.workers is None else count_words(c.workers)
    best = "no fixed count succeeded" if c.best_workers is None else \
        f"best throughput {c.best_samples_per_s:,.0f} samples/s at {count_words(c.best_workers)}"
    return f"{c.runs} runs; all of them choose {choice} ({best}); the search {'agrees' if c.agrees else 'disagrees'}"


def _evidence_table(evidence: tuple[tuple[Workers, RunResult], ...]) -> list[str]:
    out = [f"  {'workers':>8}  {'samples/s':>10}  {'AU':>5}  {'starved':>7}"]
    for workers, r in evidence:
        if usable(r):
            out.append(f"  {workers!s:>8}  {r.samples_per_s:>10,.0f}  {r.accelerator_utilization:>5.2f}  "
                       f"{r.starvation:>7.2f}")
        else:
            out.append(f"  {workers!s:>8}  failed: {r.error}")
    return out


def figures(result: RunResult) -> str:
    if not usable(result):
        return f"failed ({result.error})"
    return f"{result.samples_per_s:,.0f} samples/s (AU {result.accelerator_utilization:.2f})"


def count_words(workers: Workers) -> str:
    if workers == AUTOTUNE:
        return "autotune"
    return f"{workers} worker" if workers == 1 else f"{workers} workers"


def _verb(workers: Workers, verb: str) -> str:
    """"reach" -> "reaches", "give" -> "gives" after one worker or autotune."""
    if workers not in (1, AUTOTUNE):
        return verb
    return f"{verb}es" if verb.endswith("h") else f"{verb}s"


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}
