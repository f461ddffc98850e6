"""The arithmetic of ``feedbench capacity`` (the runs are in :mod:`.capacity`): how many
accelerators these CPUs feed, the largest number N of emulated accelerators,
each a rank with its own loader over its shard of the data, all on one CPU budget at once,
at which every rank holds the target AU over a common window (MLPerf Storage's score, with
the real preprocessing instead of reads and sleeps).

An accelerator is a profile: the batch it takes and the time of its step (:class:`Accelerator`,
:data:`PROFILES` from the public MLPerf Storage / DLIO workload configs, or a custom one); each
rank's workload is the asynchronous emulated device at that step time (``emulated:<step>``).

The search (each N measured at most once, as the sweep's; the score assumes that a rank's AU
does not rise when more ranks share the CPUs):

1. Measure N = 1. When its rank misses the target, the score is the AU it reached (a fraction
   below one: the share of one accelerator these CPUs feed); nothing more is measured.
2. Predict: the rank's tree used ``cpu_util`` CPU seconds a second for ``samples_per_s``
   samples, c = cpu_util / samples_per_s CPU seconds a sample; the budget of K CPUs makes K / c
   samples a second, and each accelerator takes ``target_au x batch / step`` of them:
   N* = floor(K / (c x target_au x batch / step)), clamped to [2, max_ranks].
3. Confirm: measure N*; read the model again from each point measured (after a point that
   holds, its CPU seconds a sample as in 2; after one that misses, N x the straggler's AU /
   target_au, as if AU fell as 1 / N), kept between the largest N known to hold and the
   smallest known to miss, else the neighbour; after MODEL_GUESSES points, bisect between
   them (doubling while none misses), until they are neighbours, or N is max_ranks and
   holds. The score is the largest N that holds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.loop.ranks import RanksRun
from feedbench.pipelines.loop.result import RunResult

log = logging.getLogger(__name__)

CAPACITY_JSON = "capacity.json"


@dataclass(frozen=True)
class Accelerator:
    """An emulated accelerator: the batch it takes and the time of its step.

    Attributes:
        name: Its name ("h100-resnet50", or "custom").
        batch_size: Samples per step (the pipeline's batch size).
        step_s: Seconds one step takes on it.
        source: Where the figures come from.
    """

    name: str
    batch_size: int
    step_s: float
    source: str = "given on the command line"

    def __post_init__(self) -> None:
        checks.positive_int("batch", self.batch_size)
        if isinstance(self.step_s, bool) or not isinstance(self.step_s, (int, float)) or not 0 < self.step_s < 3600:
            raise ConfigError(f"an accelerator's step must be a time above 0 and below an hour, got {self.step_s!r}")

    @property
    def demand(self) -> float:
        """Samples a second it takes at AU 1."""
        return self.batch_size / self.step_s

    @property
    def workload(self) -> str:
        """The emulated device at its step time, as a workload name."""
        return f"emulated:{self.step_s * 1e3:g}ms"

    def describe(self) -> str:
        return f"{self.name} (batch {self.batch_size} in {self.step_s * 1e3:g} ms, {self.demand:,.0f} samples/s)"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DLIO = "DLIO (argonne-lcf/dlio_benchmark) dlio_benchmark/configs/workload/"
PROFILES: dict[str, Accelerator] = {
    "h100-resnet50": Accelerator("h100-resnet50", 400, 0.224,
                                 f"MLPerf Storage v1.0, {_DLIO}resnet50_h100.yaml: batch_size 400, computation_time "
                                 "0.224 s, au 0.90"),
    "a100-resnet50": Accelerator("a100-resnet50", 400, 0.435,
                                 f"MLPerf Storage v1.0, {_DLIO}resnet50_a100.yaml: batch_size 400, computation_time "
                                 "0.435 s, au 0.90"),
    "h100-unet3d": Accelerator("h100-unet3d", 7, 0.323,
                               f"MLPerf Storage v1.0, {_DLIO}unet3d_h100.yaml: batch_size 7, computation_time 0.323 s, "
                               "au 0.90"),
}

_TIME = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(us|ms|s)$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_accelerator(text: str) -> Accelerator:
    """A profile by name (:data:`PROFILES`), or a custom one: ``step=224ms,batch=400``."""
    if text in PROFILES:
        return PROFILES[text]
    if "=" not in text:
        raise ConfigError(f"unknown accelerator {text!r}: choose {', '.join(PROFILES)}, or give step=224ms,batch=400")
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in ("step", "batch") or not value.strip():
            raise ConfigError(f"accelerator {text!r}: expected step=<time>,batch=<samples>, got {part!r}")
        fields[key.strip()] = value.strip()
    if set(fields) != {"step", "batch"}:
        raise ConfigError(f"accelerator {text!r}: give both step=<time> and batch=<samples>")
    time_match = _TIME.match(fields["step"])
    if time_match is None:
        raise ConfigError(f"accelerator {text!r}: step {fields['step']!r} is not a time such as 224ms, 0.5s or 800us")
    if not fields["batch"].isdigit():
        raise ConfigError(f"accelerator {text!r}: batch {fields['batch']!r} is not a whole number")
    return Accelerator("custom", int(fields["batch"]),
                       float(time_match.group(1)) * _UNITS[time_match.group(2)])


@dataclass(frozen=True)
class Point:
    """N accelerators measured at once.

    Attributes:
        ranks: N.
        workers: Workers of each rank.
        run: What the ranks measured, and the whole tree's figures.
        target_au: The AU each rank had to hold.
        tuning: Where the workers were tuned for this N: (workers each, the straggler's AU,
            samples/s of all ranks) of every count the tuner measured, in order.
    """

    ranks: int
    workers: int | str
    run: RanksRun
    target_au: float
    tuning: tuple[tuple[int, float, float], ...] = ()

    @property
    def holds(self) -> bool:
        """Every rank ran and held the target AU."""
        return self.run.ok and all(r.accelerator_utilization >= self.target_au for r in self.run.results)

    @property
    def straggler(self) -> int | None:
        """The rank of lowest AU (a failed rank first); None when there is none."""
        if not self.run.results:
            return None
        return min(range(len(self.run.results)), key=lambda i: (self.run.results[i].ok,
                                                                _au(self.run.results[i])))

    @property
    def min_au(self) -> float:
        return min((_au(r) for r in self.run.results), default=math.nan)

    @property
    def samples_per_s(self) -> float:
        """Samples a second of all ranks together."""
        return sum(r.samples_per_s for r in self.run.results if r.ok)

    def to_dict(self) -> dict[str, Any]:
        run = self.run
        return {"ranks": self.ranks, "workers": self.workers, "target_au": self.target_au, "holds": self.holds,
                "straggler": self.straggler, "min_au": _none(self.min_au), "samples_per_s": self.samples_per_s,
                "peak_rss_bytes": run.peak_rss_bytes, "peak_pss_bytes": run.peak_pss_bytes,
                "contention": _none(run.contention), "window_s": _none(run.window_s),
                "tuning": [list(t) for t in self.tuning], "results": [r.to_dict() for r in run.results]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Point:
        run = RanksRun(tuple(RunResult.from_dict(r) for r in data["results"]), data.get("peak_rss_bytes", 0),
                       data.get("peak_pss_bytes", 0), _nan(data.get("contention")), _nan(data.get("window_s")))
        return cls(data["ranks"], data["workers"], run, data["target_au"],
                   tuple((w, _nan(au), rate) for w, au, rate in data.get("tuning", ())))


def _au(result: RunResult) -> float:
    return result.accelerator_utilization if result.ok and not math.isnan(result.accelerator_utilization) else 0.0


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Capacity:
    """The answer: how many accelerators these CPUs feed.

    Attributes:
        score: The largest N whose every rank held the target AU; below one (a fraction) when
            one accelerator alone missed it: the AU it reached. NaN when N = 1 failed to run.
        points: Every N measured, in the order measured.
        predicted: The N the model predicted from N = 1 (None: no model, N = 1 missed).
        reason: The answer in a sentence.
    """

    score: float
    points: tuple[Point, ...]
    predicted: int | None
    reason: str

    def point(self, ranks: int) -> Point | None:
        return next((p for p in self.points if p.ranks == ranks), None)


Measure = Callable[[int], Point]


@dataclass
class _Points:
    """Each N measured at most once (the points a resumed search already has are reused)."""

    measure: Measure
    known: dict[int, Point] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)

    def take(self, ranks: int) -> Point:
        if ranks not in self.known:
            self.known[ranks] = self.measure(ranks)
        if ranks not in self.order:
            self.order.append(ranks)
        return self.known[ranks]


def predict(point: Point, accelerator: Accelerator, cpus: int, target_au: float) -> int | None:
    """N* = floor(K / (c x target_au x demand)), c the CPU seconds a sample of the ranks of
    `point` (module docstring); None when the point gave no CPU figure."""
    results = [r for r in point.run.results if r.ok]
    samples = sum(r.samples_per_s for r in results)
    used = sum(r.cpu_util for r in results if not math.isnan(r.cpu_util))
    if not results or len(results) < len(point.run.results) or not samples > 0 or not used > 0:
        return None
    return math.floor(cpus / (used / samples * target_au * accelerator.demand) + 1e-9)


MODEL_GUESSES = 3  # points placed by the model; the rest of the search bisects (or doubles)


def _scaled(point: Point, target_au: float) -> int | None:
    """After a miss: the N at which the straggler's AU would reach the target were AU to fall as
    1 / N (the CPUs shared out evenly); None for a failed run."""
    if not point.run.ok or not point.min_au > 0:
        return None
    return math.floor(point.ranks * point.min_au / target_au + 1e-9)


def search(measure: Measure, *, accelerator: Accelerator, cpus: int, target_au: float = 0.9, max_ranks: int = 64,
           known: Mapping[int, Point] | None = None) -> Capacity:
    """The largest N at which every rank holds `target_au` (module docstring: the search).

    Args:
        measure: Runs N ranks at once and returns their Point.
        accelerator: The profile each rank emulates (for the prediction).
        cpus: The CPU budget all ranks share.
        target_au: The AU every rank must hold.
        max_ranks: The largest N considered.
        known: Points already measured (a resumed search), by N.
    """
    checks.fraction("target_au", target_au)
    checks.whole_number("max_ranks", max_ranks, minimum=1)
    points = _Points(measure, dict(known or {}))
    first = points.take(1)
    if not first.holds:
        reached = first.min_au if first.run.ok else math.nan
        why = (f"one accelerator alone reached AU {reached:.2f}, below the target {target_au:.2f}: these CPUs feed "
               f"{reached:.2f} of one" if first.run.ok else f"one accelerator alone did not run: {_error(first)}")
        return Capacity(reached, _ordered(points), None, why)
    guess = predict(first, accelerator, cpus, target_au)
    lo, hi = 1, None  # the largest N known to hold, the smallest known to miss
    nxt, guesses = guess, 0
    while lo < max_ranks and (hi is None or hi - lo > 1):
        if nxt is None or nxt <= lo or (hi is not None and nxt >= hi) or guesses >= MODEL_GUESSES:
            nxt = (lo + hi) // 2 if hi is not None else 2 * lo
        point = points.take(min(nxt, max_ranks))
        for ranks, seen in points.known.items():  # a resumed search's points narrow it too
            if seen.holds and ranks > lo and (hi is None or ranks < hi):
                lo = ranks
            elif not seen.holds and ranks > lo and (hi is None or ranks < hi):
                hi = ranks
        # the next: the model read again from this point, else the neighbour, else halfway
        guesses += 1
        if point.holds:
            model = predict(point, accelerator, cpus, target_au)
            nxt = max(model, point.ranks + 1) if model is not None else point.ranks + 1
        else:
            model = _scaled(point, target_au)
            nxt = min(model, point.ranks - 1) if model is not None else point.ranks - 1
    why = f"{lo} accelerators held AU {target_au:.2f} or more on every rank" + (
        f" (the most considered, {max_ranks})" if hi is None else _missed(points.known[hi]))
    return Capacity(float(lo), _ordered(points), guess, why)


def _missed(point: Point) -> str:
    """Why N = point.ranks missed, in words."""
    rank = point.straggler
    result = point.run.results[rank] if rank is not None else None
    if result is not None and not result.ok:
        return f"; at {point.ranks} rank {rank} failed: {result.error}"
    return f"; at {point.ranks} the straggler (rank {rank}) reached {point.min_au:.2f}"


def _ordered(points: _Points) -> tuple[Point, ...]:
    return tuple(points.known[n] for n in points.order)


def _error(point: Point) -> str:
    return next((r.error for r in point.run.results if not r.ok), "no rank reported")


def budget_share(cpus: int, ranks: int) -> int:
    """The most workers the tuner gives each of `ranks` ranks: its share of the budget's CPUs,
    at least one."""
    return max(1, cpus // ranks)


def straggler_result(point: Point) -> RunResult:
    """What the tuner reads of N ranks at one worker count: the straggler's result (a failed
    rank's, where one failed)."""
    rank = point.straggler
    return point.run.results[rank] if rank is not None else RunResult.failed("no rank reported")


def describe_points(points: Sequence[Point]) -> list[str]:
    """One line per N: every rank's AU, the straggler, the tree's memory."""
    lines = []
    for point in sorted(points, key=lambda p: p.ranks):
        aus = ", ".join(f"{_au(r):.2f}" for r in point.run.results)
        tuned = (" (tuned: " + ", ".join(f"{w} -> straggler AU {au:.2f}" for w, au, _ in point.tuning) + ")"
                 if len(point.tuning) > 1 else "")
        lines.append(f"N={point.ranks} ({point.workers} worker{'' if point.workers == 1 else 's'} each{tuned}): "
                     f"AU {aus}; {'holds' if point.holds else 'misses'}; {point.samples_per_s:,.0f} samples/s in all")
    return lines
