"""``feedbench capacity`` on the real pipelines: N ranks, each the framework's pipeline over its
shard of the data, run at once on one CPU budget (:mod:`~feedbench.pipelines.loop.ranks`); the
search of :mod:`.capacity_search` over N; the files of
:mod:`~feedbench.pipelines.harness.report.capacity`, written after every N.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.capacity_search import (
    CAPACITY_JSON,
    Accelerator,
    Capacity,
    Point,
    _none,
    budget_share,
    parse_accelerator,
    search,
    straggler_result,
)
from feedbench.pipelines.loop.result import RunResult

__all__ = ["CAPACITY_JSON", "CapacityPlan", "capacity", "capacity_into", "measure_ranks", "rank_specs"]

@dataclass(frozen=True)
class CapacityPlan:
    """How a capacity search measures; the same for every framework.

    Attributes:
        accelerator: The accelerator each rank emulates.
        target_au: The AU every rank must hold.
        max_ranks: The largest N considered (default: four per CPU of the budget).
        workers: Workers of each rank (None: tuned for each N by the sweep's search, from 1 to
            the budget's share).
    """

    accelerator: Accelerator
    target_au: float = 0.9
    max_ranks: int | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        checks.fraction("target_au", self.target_au)
        if self.max_ranks is not None:
            checks.whole_number("max_ranks", self.max_ranks, minimum=1)
        if self.workers is not None:
            checks.whole_number("workers", self.workers, minimum=0)

    def ranks_limit(self, cpus: int) -> int:
        return self.max_ranks if self.max_ranks is not None else 4 * cpus

    def to_dict(self) -> dict[str, Any]:
        return {"accelerator": self.accelerator.to_dict(), "target_au": self.target_au, "max_ranks": self.max_ranks,
                "workers": self.workers}


def rank_specs(settings: Any, framework: str, ranks: int, workers: int | str) -> list[Any]:
    """The isolated run of each of `ranks` ranks: the framework's pipeline over shard r of
    `ranks` (``num_shards``, ``shard_index``) at `workers`, measured as `settings` say."""
    from feedbench.pipelines import registry
    from feedbench.pipelines.loop.isolation import RunSpec

    specs = []
    for rank in range(ranks):
        options = {**settings.options, "workers": workers, "num_shards": ranks, "shard_index": rank}
        config = registry.make_config(settings.task, framework, options)
        recorded = {"task": settings.task, "framework": framework, "data": settings.data, "rank": rank,
                    "ranks": ranks, **{name: getattr(config, name) for name in config.__dataclass_fields__}}
        specs.append(RunSpec(registry.loader_factory(settings.task, framework, settings.data, config),
                             settings.measure, recorded))
    return specs


def measure_ranks(settings: Any, framework: str, plan: CapacityPlan, ranks: int) -> Point:
    """N = `ranks` accelerators of `framework` at once, each over its shard, at the plan's
    workers, or at the count the sweep's tuner chooses for them: its search over 1 to the budget's
    share of workers each (:func:`~.capacity_search.budget_share`), read from the straggler's
    run (the fewest workers at which the straggler holds the target AU, else the fewest within
    5% of the best throughput); each count measured once, the chosen one's run kept."""
    from feedbench.pipelines.harness.sweep import recommend
    from feedbench.pipelines.loop.ranks import run_ranks

    def at(workers: int) -> Point:
        return Point(ranks, workers, run_ranks(rank_specs(settings, framework, ranks, workers)), plan.target_au)

    share = budget_share(settings.cpus, ranks)
    if plan.workers is not None or share == 1:
        return at(plan.workers if plan.workers is not None else 1)
    tried: dict[int, Point] = {}

    def measure(workers: int) -> RunResult:
        tried[workers] = at(workers)
        return straggler_result(tried[workers])

    chosen = recommend(measure, max_workers=share, target_au=plan.target_au, min_workers=1).workers
    point = tried[chosen] if chosen in tried else tried[max(tried)]
    tuning = tuple((w, p.min_au, p.samples_per_s) for w, p in tried.items())
    return dataclasses.replace(point, tuning=tuning)


OnPoint = Callable[[str, Point], None]


def _nothing(*_: Any) -> None:
    return None


def _header(settings: Any, frameworks: Sequence[str], plan: CapacityPlan, command: str) -> dict[str, Any]:
    from feedbench.pipelines.core.machine import machine_facts

    return {"command": command, "settings": {**settings.to_dict(), "frameworks": list(frameworks)},
            "plan": plan.to_dict(), "machine": machine_facts()}


def _same_run(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a saved capacity run and this one (the settings and the plan)."""
    differences = []
    for part in ("settings", "plan"):
        old, new = before.get(part, {}), now[part]
        for key in sorted(set(old) | set(new)):
            if key != "frameworks" and old.get(key) != new.get(key):
                differences.append(f"{part}.{key}: {old.get(key)!r} then, {new.get(key)!r} now")
    return differences


def capacity_into(out: Any, settings: Any, frameworks: Sequence[str], plan: CapacityPlan, *, command: str,
                  resume: bool = False, on_point: OnPoint = _nothing) -> dict[str, Capacity]:
    """Searches the capacity of each of `frameworks` over `settings` (its ``measure``: the
    accelerator's workload, the window, the CPU budget) and writes the files of
    :mod:`~feedbench.pipelines.harness.report.capacity` into `out`. capacity.json is written again
    after every N, so that what was measured is kept if a later run or the user stops the rest;
    with `resume`, the N a saved run of the same settings holds are not measured again."""
    from pathlib import Path

    from feedbench.pipelines.core.errors import OutputError
    from feedbench.pipelines.core.files import check_writable
    from feedbench.pipelines.harness.report import capacity as files

    folder = Path(out)
    for name in ("num_shards", "shard_index"):
        if name in settings.options:
            raise ConfigError(f"--option {name}: capacity sets it for each rank (rank k of N reads shard k of N)")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: is a file; give a folder")
    header = _header(settings, frameworks, plan, command)
    saved = files.read_record(folder) if folder.is_dir() else None
    if saved is not None and not resume:
        raise ConfigError(f"--out {folder} holds a capacity run already: add --resume to go on with it, or give "
                          "another folder")
    if saved is not None:
        differences = _same_run(saved, header)
        if differences:
            raise ConfigError(f"--out {folder} holds a capacity run of other settings ({differences[0]}); give "
                              "another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(exc.errno, exc.strerror or str(exc), str(folder)) from None
    check_writable(folder, "--out")
    points: dict[str, list[dict[str, Any]]] = {f: list((saved or {}).get("points", {}).get(f, [])) for f in frameworks}
    found: dict[str, Capacity] = {}

    def write(complete: bool) -> None:
        record = {**header, "complete": complete, "points": points,
                  "capacity": {f: {"score": _none(c.score), "predicted": c.predicted, "reason": c.reason}
                               for f, c in found.items()}}
        files.write_record(folder, record)

    for framework in frameworks:
        known = {p["ranks"]: Point.from_dict(p) for p in points[framework]}

        def measure(ranks: int, framework: str = framework) -> Point:
            point = measure_ranks(settings, framework, plan, ranks)
            points[framework].append(point.to_dict())
            write(False)
            on_point(framework, point)
            return point

        found[framework] = search(measure, accelerator=plan.accelerator, cpus=settings.cpus,
                                  target_au=plan.target_au, max_ranks=plan.ranks_limit(settings.cpus), known=known)
        write(False)
    write(True)
    files.write_all(folder, header, found, command)
    return found


def capacity(task: str, data: Any, out: Any, *, accelerator: str | Accelerator = "h100-resnet50",
             frameworks: Sequence[str] | None = None, cpus: int | None = None, target_au: float = 0.9,
             seconds: float = 10.0, max_ranks: int | None = None, workers: int | None = None,
             options: Mapping[str, Any] | None = None, device: str = "cpu", resume: bool = False,
             ) -> dict[str, Capacity]:
    """``feedbench capacity`` in Python: the largest number of emulated accelerators that
    `frameworks` (default: torch and tf, registry.defaults) feed at once from `cpus` CPUs, each
    at `target_au` or more over a common window of `seconds`; the files go to `out`.
    Returns each framework's :class:`Capacity`. Scripts that call it need an
    ``if __name__ == "__main__":`` guard (the ranks are spawned)."""
    from feedbench.pipelines import registry
    from feedbench.pipelines.harness.plan import Settings
    from feedbench.pipelines.loop.config import MeasureConfig

    chosen = accelerator if isinstance(accelerator, Accelerator) else parse_accelerator(accelerator)
    if options and "batch_size" in options:
        raise ConfigError("batch_size is the accelerator's (its profile fixes it); choose another --accelerator")
    measure = MeasureConfig(workload=chosen.workload, device=device, seconds=seconds, cpus=cpus)
    settings = Settings(task=task, data=str(data), measure=measure,
                        options={**dict(options or {}), "batch_size": chosen.batch_size})
    chosen_frameworks = list(frameworks) if frameworks else registry.defaults(task)
    settings.check_frameworks(chosen_frameworks)
    plan = CapacityPlan(chosen, target_au=target_au, max_ranks=max_ranks, workers=workers)
    return capacity_into(out, settings, chosen_frameworks, plan, command=f"feedbench.pipelines.capacity({task!r}, ...)",
                         resume=resume)
