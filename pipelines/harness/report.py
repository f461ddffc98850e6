"""What a grid of results says: a table, plots, a verdict computed from the numbers, report.md.

Everything here reads results rows (see :mod:`feedbench.pipelines.harness.grid`), so a report can be
drawn again from a saved folder at any time. The verdict compares frameworks at the same CPU
budget (every cell of a grid is pinned to the same CPUs): best throughput per framework, and
the throughput at each worker count both have, with memory and starvation beside them.
Plots are drawn with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from feedbench.pipelines.harness.grid import AUTOTUNE
from feedbench.pipelines.harness.store import write_atomically
from feedbench.pipelines.harness.sweep import NEAR_BEST

log = logging.getLogger(__name__)

REPORT_MD = "report.md"
THROUGHPUT_PNG = "throughput.png"
MEMORY_PNG = "memory.png"
# Best throughputs closer than this are read as a tie: one run per cell, on shared cores
# (the sweep's own "as good as the best", so that its recommendation and the report agree).
SAME_WITHIN = NEAR_BEST
AU_TARGET = 0.9  # "the consumer was kept busy": AU at or above this, unless a sweep chose another
Row = Mapping[str, Any]


def workers_key(workers: int | str) -> tuple[int, int]:
    """Sort key: worker counts ascending, AUTOTUNE after them."""
    return (1, 0) if workers == AUTOTUNE else (0, int(workers))


def _sorted(rows: Sequence[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r["framework"], workers_key(r["workers"])))


def _value(row: Row, key: str) -> float:
    value = row.get(key)
    return math.nan if value is None else float(value)


def _fmt(value: Any, spec: str) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def _bytes(value: Any) -> str:
    if not value:
        return "-"
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:.0f} MB"


# --- the table ---------------------------------------------------------------------------

COLUMNS = ("framework", "workers", "samples/s", "starvation", "AU", "input-bound", "TTFB s", "wait p95 ms",
           "peak PSS MB", "peak RSS MB", "CPU cores", "status")


def table_cells(row: Row) -> tuple[str, ...]:
    """One row of the results table, as text."""
    status = "ok" if row["ok"] else f"FAILED: {row.get('error') or 'unknown'}"
    wait_p95 = row.get("wait_p95_s")
    return (
        row["framework"], str(row["workers"]), _fmt(row.get("samples_per_s"), ".1f"),
        _fmt(row.get("starvation"), ".2f"), _fmt(row.get("accelerator_utilization"), ".2f"),
        row.get("input_bound") or "-", _fmt(row.get("ttfb_s"), ".2f"),
        _fmt(None if wait_p95 is None else wait_p95 * 1e3, ".1f"),
        _fmt((row.get("peak_pss_bytes") or 0) / 1e6 or None, ".0f"),
        _fmt((row.get("peak_rss_bytes") or 0) / 1e6 or None, ".0f"),
        _fmt(row.get("cpu_util"), ".2f"), status,
    )


def results_table(rows: Sequence[Row], title: str) -> Table:
    """A rich table of the rows, one line per run."""
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("framework", "input-bound", "status") else "right",
                         overflow="fold")
    for row in _sorted(rows):
        table.add_row(*table_cells(row))
    return table


def context_of(rows: Sequence[Row]) -> str:
    """"emulated:20ms on cpu, 2 CPUs per run": what every run of the rows shared."""
    settings = rows[0].get("settings", {}) if rows else {}
    devices = sorted({r["device"] for r in rows if r.get("device")}) or [settings.get("device", "?")]
    return f"{settings.get('workload', '?')} on {', '.join(devices)}, {plural(settings.get('cpus', '?'), 'CPU')} per run"


def title_of(rows: Sequence[Row]) -> str:
    """"image: emulated:20ms on cpu, 2 CPUs per run"."""
    task = rows[0].get("settings", {}).get("task", "?") if rows else "?"
    return f"{task}: {context_of(rows)}"


def describe(row: Row) -> list[str]:
    """One run, readably: what was run and what it measured."""
    head = f"{row['task']} {row['framework']} workers={row['workers']}: {context_of([row])}"
    if not row["ok"]:
        return [head, f"  FAILED: {row.get('error')}"]
    ms = lambda key: _fmt(None if row.get(key) is None else row[key] * 1e3, ".1f")  # noqa: E731
    return [
        head,
        f"  throughput         {row['samples_per_s']:.1f} samples/s ({row['batches_per_s']:.2f} batches/s)",
        f"  starvation         {row['starvation']:.3f} ({row['input_bound']} input-bound)",
        f"  accelerator util.  {row['accelerator_utilization']:.3f}",
        f"  time to 1st batch  {row['ttfb_s']:.2f} s",
        f"  wait p50/p95/p99   {ms('wait_p50_s')} / {ms('wait_p95_s')} / {ms('wait_p99_s')} ms",
        f"  h2d / compute      {ms('h2d_mean_s')} / {ms('compute_mean_s')} ms per step (mean)",
        f"  window             {row['window_s']:.2f} s: {row['steps']} steps after {row['warmup_steps']} warm-up, "
        f"{row['samples']} samples, {row['epochs']} epoch(s), stopped by {row['stop_reason']}",
        f"  peak memory        PSS {_bytes(row['peak_pss_bytes'])}, RSS {_bytes(row['peak_rss_bytes'])}, "
        f"device {_bytes(row.get('peak_device_bytes'))}",
        f"  CPU used           {row['cpu_util']:.2f} cores",
        # text: records the corpus reader dropped (empty, unreadable); image: samples skipped by on_error
        f"  {'records' if row['task'] == 'text' else 'samples'} skipped    {row['skipped']}",
    ]


# --- the verdict ---------------------------------------------------------------------------

def _best(rows: Sequence[Row]) -> dict[str, Row]:
    best: dict[str, Row] = {}
    for row in rows:
        if row["ok"] and not math.isnan(_value(row, "samples_per_s")):
            held = best.get(row["framework"])
            if held is None or row["samples_per_s"] > held["samples_per_s"]:
                best[row["framework"]] = row
    return best


def plural(count: Any, noun: str) -> str:
    """"1 CPU", "2 CPUs"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def at_workers(workers: int | str) -> str:
    """"at 1 worker", "at 4 workers", "at AUTOTUNE"."""
    if workers == AUTOTUNE:
        return "at AUTOTUNE"
    return f"at {plural(workers, 'worker')}"


def _rate(row: Row) -> str:
    return f"{row['samples_per_s']:.1f} samples/s {at_workers(row['workers'])}"


def _memory_line(first: Row, second: Row) -> str:
    a, b = first.get("peak_pss_bytes") or 0, second.get("peak_pss_bytes") or 0
    line = (f"Memory at those settings: {first['framework']} peaked at {_bytes(a)} PSS ({_bytes(first.get('peak_rss_bytes'))} "
            f"RSS), {second['framework']} at {_bytes(b)} PSS ({_bytes(second.get('peak_rss_bytes'))} RSS)")
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
        if row["ok"] and not math.isnan(_value(row, "samples_per_s")):
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
                     + " vs ".join(_bytes(r.get("peak_pss_bytes")) for r in ranked) + ").")
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
                and _value(r, "accelerator_utilization") >= goal[framework]]
        fewest = min(busy, key=workers_key) if busy else None
        part = f"{framework} {at_workers(fewest)}" if fewest is not None else f"{framework} at no count measured"
        parts.append(part if shared else f"{part} (AU >= {goal[framework]:g})")
    head = f" (AU >= {goal[frameworks[0]]:g})" if shared else ""
    return f"Fewest workers that kept the consumer busy{head}: " + "; ".join(parts) + "."


def _unlike_settings(rows: Sequence[Row]) -> list[str]:
    """A caution where a worker count means different things to torch and tf.data."""
    counts = {r["workers"] for r in rows}
    said = []
    if 0 in counts:
        said.append("at workers=0 torch makes each batch in the main process, in turn with the consumer, while "
                    "tf.data still prefetches on a background thread")
    if AUTOTUNE in counts:
        said.append("AUTOTUNE is one worker process per CPU in torch but tf.data's own tuning of parallel calls and "
                    "buffers")
    return [f"Note: {' and '.join(said)}; at {'those settings' if len(said) > 1 else 'that setting'} the two "
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
    best = _best(rows)
    failed = [r for r in rows if not r["ok"]]
    tail = [f"{len(failed)} of {len(rows)} runs failed; their reasons are in the table."] if failed else []
    if not best:
        return ["No run succeeded, so nothing can be compared.", *tail]
    ranked = sorted(best.values(), key=lambda r: r["samples_per_s"], reverse=True)
    cpus = rows[0].get("settings", {}).get("cpus", "?")
    if len(ranked) == 1:
        only = ranked[0]
        lines = [f"Only {only['framework']} has results: its best is {_rate(only)} (starvation "
                 f"{only['starvation']:.2f}, peak PSS {_bytes(only.get('peak_pss_bytes'))}); nothing to compare it with."]
    else:
        lines = _headline(ranked, cpus) + _per_count(rows)
    return [*lines, _kept_busy(rows, targets or {}), *_unlike_settings(rows), *_short_windows(rows),
            *_epoch_crossings(rows), *tail]


SHORT_WINDOW_S = 2.0  # shorter measured windows than this say more about noise than about a pipeline


def _short_windows(rows: Sequence[Row]) -> list[str]:
    windows = [r["window_s"] for r in rows if r["ok"] and r.get("window_s")]
    if not windows or min(windows) >= SHORT_WINDOW_S:
        return []
    return [f"Caution: {sum(w < SHORT_WINDOW_S for w in windows)} of {len(windows)} measured windows are shorter "
            f"than {SHORT_WINDOW_S:g} s (shortest {min(windows):.2f} s); such figures are noisy: raise --steps or "
            "use --seconds."]


# --- plots -----------------------------------------------------------------------------------

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def _series(ax: Any, rows: Sequence[Row], key: str, scale: float, x: dict, style: str = "-",
            label_suffix: str = "", mark_failed: bool = True) -> None:
    """One line per framework over the worker counts; AUTOTUNE as a star, a failed run as an x at 0."""
    frameworks = sorted({r["framework"] for r in rows})
    for framework, color in zip(frameworks, COLORS):
        mine = [r for r in rows if r["framework"] == framework]
        counted = sorted((r for r in mine if r["workers"] != AUTOTUNE and r["ok"]), key=lambda r: workers_key(r["workers"]))
        ax.plot([x[r["workers"]] for r in counted], [_value(r, key) * scale for r in counted], style, marker="o",
                color=color, label=f"{framework}{label_suffix}")
        for row in mine:
            if row["workers"] == AUTOTUNE and row["ok"]:
                ax.plot([x[AUTOTUNE]], [_value(row, key) * scale], marker="*", markersize=13, color=color,
                        linestyle="none")
            if not row["ok"] and mark_failed:
                ax.plot([x[row["workers"]]], [0], marker="x", markersize=10, markeredgewidth=2, color=color,
                        linestyle="none", clip_on=False)


def _axes_workers(ax: Any, x: dict, rows: Sequence[Row], failures_marked: bool = False) -> None:
    ax.set_xticks(list(x.values()), [("AUTOTUNE" if w == AUTOTUNE else str(w)) for w in x])
    failed = failures_marked and any(not r["ok"] for r in rows)
    notes = [note for note, shown in (("x: a failed run", failed),
                                      ("*: AUTOTUNE", AUTOTUNE in x)) if shown]
    ax.set_xlabel("workers" + (f" ({', '.join(notes)})" if notes else ""))
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)


def figures(rows: Sequence[Row]) -> tuple[Any, Any]:
    """(throughput figure: samples/s and starvation against workers; memory figure: peak PSS
    and RSS against workers), one line per framework. A failed run is an x at 0 on the
    throughput panel only: it has no starvation or memory figure, and 0 there would read as one."""
    from matplotlib.figure import Figure

    values = sorted({r["workers"] for r in rows}, key=workers_key)
    x = {w: i for i, w in enumerate(values)}
    title = title_of(rows)

    throughput = Figure(figsize=(11, 4.4), layout="constrained")
    rate, starve = throughput.subplots(1, 2)
    _series(rate, rows, "samples_per_s", 1.0, x)
    rate.set_ylabel("samples/s (measured window)")
    rate.set_title("Throughput")
    _series(starve, rows, "starvation", 1.0, x, mark_failed=False)
    starve.set_ylabel("starvation (fraction of the window)")
    starve.set_title("Starvation: consumer waiting for data")
    for ax in (rate, starve):
        _axes_workers(ax, x, rows, failures_marked=ax is rate)
        ax.legend()
    starve.set_ylim(0, 1.05)
    throughput.suptitle(title)

    memory_figure = Figure(figsize=(7, 4.4), layout="constrained")
    memory = memory_figure.subplots()
    _series(memory, rows, "peak_pss_bytes", 1e-9, x, "-", " PSS", mark_failed=False)
    _series(memory, rows, "peak_rss_bytes", 1e-9, x, ":", " RSS", mark_failed=False)
    memory.set_ylabel("peak memory of the process tree (GB)")
    memory.set_title("Peak memory (PSS: shared pages counted once)")
    _axes_workers(memory, x, rows)
    memory.legend()
    memory_figure.suptitle(title)
    return throughput, memory_figure


def draw_plots(rows: Sequence[Row], out: Path) -> list[Path]:
    """Writes throughput.png and memory.png (see :func:`figures`); returns their paths."""
    paths = [out / THROUGHPUT_PNG, out / MEMORY_PNG]
    for figure, path in zip(figures(rows), paths):
        write_atomically(path, lambda tmp, figure=figure: figure.savefig(tmp, dpi=100, format="png"))
    return paths


# --- report.md -------------------------------------------------------------------------------

def _markdown_table(rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in table_cells(row)) + " |" for row in _sorted(rows)]
    return lines


def _facts(rows: Sequence[Row]) -> list[str]:
    first = rows[0]
    keys = ["cpu_model", "cpu_cores", "cpus_usable", "memory_bytes", "gpu", "python", "platform",
            *sorted(k for k in first if k.endswith("_version"))]
    shown = {k: first.get(k) for k in keys}
    if shown["memory_bytes"]:
        shown["memory_bytes"] = _bytes(shown["memory_bytes"])
    return [f"- {k}: {'-' if v is None else v}" for k, v in shown.items()]


def write_report(out: Path, rows: Sequence[Row], recommendations: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Writes out/report.md: verdict, table, plots, recommendations, settings and machine."""
    frameworks = " vs ".join(sorted({r["framework"] for r in rows}))
    settings = rows[0].get("settings", {})
    lines = [f"# feedbench: {settings.get('task', '?')}, {frameworks}", "",
             f"{title_of(rows)}; {len(rows)} runs, each in a fresh process pinned to the same CPUs.", "",
             "## Verdict", "", *(f"- {line}" for line in verdict(rows, au_targets(recommendations))), "",
             "## Results", "", *_markdown_table(rows), "",
             f"![throughput and starvation against workers]({THROUGHPUT_PNG})", "",
             f"![peak memory against workers]({MEMORY_PNG})", ""]
    for recommendation in recommendations:
        lines += [f"## Sweep: {recommendation.get('framework', '?')}", "", "```",
                  *recommendation.get("lines", []), "```", ""]
    lines += ["## Settings", "", "```json", json.dumps(settings, indent=1, sort_keys=True), "```", "",
              "## Machine", "", *_facts(rows), ""]
    path = out / REPORT_MD
    write_atomically(path, lambda tmp: tmp.write_text("\n".join(lines), encoding="utf-8"))
    return path


def recommendations(out: Path) -> list[dict[str, Any]]:
    """The sweep recommendations saved in `out` (recommendation-<framework>.json)."""
    found = []
    for path in sorted(out.glob("recommendation-*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:  # a stray file: the report goes on without it
            log.warning("%s: not a readable recommendation, left out of the report (%s)", path, exc)
    return found


def render(out: Path, rows: Sequence[Row]) -> list[Path]:
    """Draws the plots and writes report.md for the rows of `out`; returns the paths."""
    return [*draw_plots(rows, out), write_report(out, rows, recommendations(out))]
