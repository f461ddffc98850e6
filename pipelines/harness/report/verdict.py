"""The verdict: what a grid's rows say, in sentences computed from the numbers.

It compares frameworks at the same CPU budget (every cell of a grid is pinned to the same
CPUs): best throughput per framework, and the throughput at each worker count both have,
with memory and starvation beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from feedbench.pipelines import registry
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.report.table import (
    Row,
    at_workers,
    fmt_bytes,
    plural,
    value_of,
    workers_key,
)
from feedbench.pipelines.harness.sweep_rule import NEAR_BEST
from feedbench.pipelines.loop.metrics import CONTENDED, contended

# Best throughputs closer than this are read as a tie: one run per cell, on shared cores
# (the sweep's own "as good as the best", so that its recommendation and the report agree).
SAME_WITHIN = NEAR_BEST


AU_TARGET = 0.9  # "the consumer was kept busy": AU at or above this, unless a sweep chose another


def _best(rows: Sequence[Row]) -> dict[str, Row]:
    best: dict[str, Row] = {}
    for row in rows:
        if row["ok"] and not math.isnan(value_of(row, "samples_per_s")):
            held = best.get(row["framework"])
            if held is None or row["samples_per_s"] > held["samples_per_s"]:
                best[row["framework"]] = row
    return best


def _rate(row: Row) -> str:
    return f"{row['samples_per_s']:.1f} samples/s {at_workers(row['workers'])}"


def _memory_line(first: Row, second: Row) -> str:
    a, b = first.get("peak_pss_bytes") or 0, second.get("peak_pss_bytes") or 0
    line = (f"Memory at those settings: {first['framework']} peaked at {fmt_bytes(a)} PSS "
            f"({fmt_bytes(first.get('peak_rss_bytes'))} RSS), {second['framework']} at {fmt_bytes(b)} PSS "
            f"({fmt_bytes(second.get('peak_rss_bytes'))} RSS)")
    if a and b:
        lighter, heavier = (first, second) if a < b else (second, first)
        less = 1 - min(a, b) / max(a, b)
        line += f": {lighter['framework']} used {less:.0%} less than {heavier['framework']}"
    return line + "."


def _headline(ranked: list[Row], cpus: Any) -> list[str]:
    first, second = ranked[0], ranked[1]
    gain = first["samples_per_s"] / second["samples_per_s"] - 1 if second["samples_per_s"] > 0 else math.inf
    budget = f"at an equal CPU budget ({plural(cpus, 'CPU')} per run)"
    if gain < SAME_WITHIN:
        line = (f"No clear winner {budget}: the best throughputs are within {SAME_WITHIN:.0%} of each other "
                f"({first['framework']} {_rate(first)}, {second['framework']} {_rate(second)}).")
    else:
        line = (f"{first['framework']} fed the consumer better {budget}: its best, {_rate(first)}, is "
                f"{gain:.0%} above {second['framework']}'s best, {_rate(second)} "
                f"({first['samples_per_s'] / second['samples_per_s']:.2f}x).")
    lines = [line]
    lines += [f"Then {r['framework']}: best {_rate(r)}." for r in ranked[2:]]
    lines.append(_memory_line(first, second))
    lines.append("Starvation at those settings: " + ", ".join(
        f"{r['framework']} {r['starvation']:.2f} ({r['input_bound']} input-bound)" for r in ranked) + ".")
    return lines


def _per_count(rows: Sequence[Row]) -> list[str]:
    """At each worker count two or more frameworks have: who is ahead and by how much."""
    by_count: dict[Any, dict[str, Row]] = {}
    for row in rows:
        if row["ok"] and not math.isnan(value_of(row, "samples_per_s")):
            by_count.setdefault(row["workers"], {})[row["framework"]] = row
    lines, ahead = [], {}
    shared = [w for w in sorted(by_count, key=workers_key) if len(by_count[w]) > 1]
    for workers in shared:
        ranked = sorted(by_count[workers].values(), key=lambda r: r["samples_per_s"], reverse=True)
        first, second = ranked[0], ranked[1]
        figures = ", ".join(f"{r['framework']} {r['samples_per_s']:.1f}" for r in ranked)
        gain = first["samples_per_s"] / second["samples_per_s"] - 1 if second["samples_per_s"] > 0 else math.inf
        lead = f"within {SAME_WITHIN:.0%}: even" if gain < SAME_WITHIN else f"{first['framework']} ahead by {gain:.0%}"
        if gain >= SAME_WITHIN:
            ahead[first["framework"]] = ahead.get(first["framework"], 0) + 1
        lines.append(f"workers={workers}: {figures} samples/s: {lead} (starvation "
                     + " vs ".join(f"{r['starvation']:.2f}" for r in ranked) + ", peak PSS "
                     + " vs ".join(fmt_bytes(r.get("peak_pss_bytes")) for r in ranked) + ").")
    if shared:
        tally = ", ".join(f"{fw} at {n} of them" for fw, n in sorted(ahead.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"Of the {len(shared)} worker counts measured for every framework, ahead by {SAME_WITHIN:.0%} or "
                     f"more: {tally or 'neither at any'}.")
    return lines


def au_targets(recommendations: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """framework -> the --target-au its sweep used, from saved recommendations."""
    targets = {}
    for recommendation in recommendations:
        target, framework = recommendation.get("target_au"), recommendation.get("framework")
        if isinstance(target, (int, float)) and not isinstance(target, bool) and framework:
            targets[str(framework)] = float(target)
    return targets


def _kept_busy(rows: Sequence[Row], targets: Mapping[str, float]) -> str:
    frameworks = sorted({r["framework"] for r in rows})
    goal = {framework: targets.get(framework, AU_TARGET) for framework in frameworks}
    shared = len(set(goal.values())) == 1
    parts = []
    for framework in frameworks:
        busy = [r["workers"] for r in rows if r["framework"] == framework and r["ok"]
                and value_of(r, "accelerator_utilization") >= goal[framework]]
        fewest = min(busy, key=workers_key) if busy else None
        part = f"{framework} {at_workers(fewest)}" if fewest is not None else f"{framework} at no count measured"
        parts.append(part if shared else f"{part} (AU >= {goal[framework]:g})")
    head = f" (AU >= {goal[frameworks[0]]:g})" if shared else ""
    return f"Fewest workers that kept the consumer busy{head}: " + "; ".join(parts) + "."


def _entries(rows: Sequence[Row]) -> list[registry.Backend]:
    """The registry entries of the rows' backends (those still registered), by name."""
    entries = {}
    for row in rows:
        try:
            entries[row["framework"]] = registry.backend(row["task"], row["framework"])
        except (ConfigError, KeyError):  # rows of a backend this version does not have
            continue
    return [entries[name] for name in sorted(entries)]


def _unlike_settings(rows: Sequence[Row]) -> list[str]:
    """A caution where a worker count means different things to the backends compared (the
    registry's words for each)."""
    counts = {r["workers"] for r in rows}
    entries = _entries(rows)
    said = []
    if 0 in counts and len({e.zero_workers for e in entries}) > 1:
        said.append("at workers=0 " + ", while ".join(f"{e.name} {e.zero_workers}" for e in entries))
    if AUTOTUNE in counts and len({e.autotune for e in entries}) > 1:
        said.append("AUTOTUNE is " + " but ".join(f"{e.autotune} in {e.name}" for e in entries))
    return [f"Note: {' and '.join(said)}; at {'those settings' if len(said) > 1 else 'that setting'} the "
            "frameworks do not run the same amount of parallel work."] if said else []


def _epoch_crossings(rows: Sequence[Row]) -> list[str]:
    crossed = [r for r in rows if r["ok"] and (r.get("epochs") or 0) > 1]
    if not crossed:
        return []
    ok = sum(1 for r in rows if r["ok"])
    return [f"Caution: {len(crossed)} of {ok} runs read past the end of the dataset (up to "
            f"{max(r['epochs'] for r in crossed)} epochs in warm-up and window): the window crossed an epoch "
            "boundary, so it includes the loader restarting (workers started again, prefetch buffers refilled) "
            "rather than only steady state; use a larger dataset or fewer --steps."]


def verdict(rows: Sequence[Row], targets: Mapping[str, float] | None = None) -> list[str]:
    """What the rows say, in sentences computed from them (never fixed words).

    Args:
        rows: Results rows.
        targets: framework -> the AU a sweep aimed at (see :func:`au_targets`); AU_TARGET otherwise.
    """
    if not rows:
        return ["No results."]
    failed = [r for r in rows if not r["ok"]]
    tail = [f"{len(failed)} of {len(rows)} runs failed; their reasons are in the table."] if failed else []
    shared = [r for r in rows if r["ok"] and contended(r.get("contention"))]
    tail = [*_contended(shared, rows), *tail]
    rows = [r for r in rows if r not in shared]  # no verdict is drawn from a run that shared its CPUs
    best = _best(rows)
    if not best:
        head = ("No run had its CPUs to itself, so no winner is drawn." if shared
                else "No run succeeded, so nothing can be compared.")
        return [head, *tail]
    ranked = sorted(best.values(), key=lambda r: r["samples_per_s"], reverse=True)
    cpus = rows[0].get("settings", {}).get("cpus", "?")
    if len(ranked) == 1:
        only = ranked[0]
        lines = [f"Only {only['framework']} has results: its best is {_rate(only)} (starvation "
                 f"{only['starvation']:.2f}, peak PSS {fmt_bytes(only.get('peak_pss_bytes'))}); "
                 "nothing to compare it with."]
    else:
        lines = _headline(ranked, cpus) + _per_count(rows)
    return [*lines, _kept_busy(rows, targets or {}), *_unlike_settings(rows), *_short_windows(rows),
            *_epoch_crossings(rows), *tail]


def _contended(shared: Sequence[Row], rows: Sequence[Row]) -> list[str]:
    """A caution naming the runs that shared their CPUs with other processes."""
    if not shared:
        return []
    named = ", ".join(f"{r['framework']} workers={r['workers']} {r['contention']:.2f}"
                      for r in sorted(shared, key=lambda r: (r["framework"], workers_key(r["workers"]))))
    return [f"Caution: {len(shared)} of {len(rows)} runs shared their CPUs with other processes (contention above "
            f"{CONTENDED:g}: {named}); their figures are in the table, but no verdict above is drawn from them. "
            "The same command with --resume --retry-contended measures them again."]


SHORT_WINDOW_S = 2.0  # shorter measured windows than this say more about noise than about a pipeline


def _short_windows(rows: Sequence[Row]) -> list[str]:
    windows = [r["window_s"] for r in rows if r["ok"] and r.get("window_s")]
    if not windows or min(windows) >= SHORT_WINDOW_S:
        return []
    return [f"Caution: {sum(w < SHORT_WINDOW_S for w in windows)} of {len(windows)} measured windows are shorter "
            f"than {SHORT_WINDOW_S:g} s (shortest {min(windows):.2f} s); such figures are noisy: raise --steps or "
            "use --seconds."]
