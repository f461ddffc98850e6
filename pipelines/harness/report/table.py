"""The results table: one line per run, and the words shared by every part of a report.

Everything in the report reads results rows (see :mod:`feedbench.pipelines.harness.grid`), so
a report can be drawn again from a saved folder at any time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.loop.metrics import contended

Row = Mapping[str, Any]


def workers_key(workers: int | str) -> tuple[int, int]:
    """Sort key: worker counts ascending, AUTOTUNE after them."""
    return (1, 0) if workers == AUTOTUNE else (0, int(workers))


def sorted_rows(rows: Sequence[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r["framework"], workers_key(r["workers"])))


def value_of(row: Row, key: str) -> float:
    value = row.get(key)
    return math.nan if value is None else float(value)


def fmt(value: Any, spec: str) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def fmt_bytes(value: Any) -> str:
    if not value:
        return "-"
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:.0f} MB"


COLUMNS = ("framework", "workers", "samples/s", "starvation", "AU", "input-bound", "TTFB s", "wait p95 ms",
           "peak PSS MB", "peak RSS MB", "CPU cores", "contention", "status")


def table_cells(row: Row) -> tuple[str, ...]:
    """One row of the results table, as text."""
    status = "ok" if row["ok"] else f"FAILED: {row.get('error') or 'unknown'}"
    if row["ok"] and contended(row.get("contention")):
        status = "shared its CPUs"
    wait_p95 = row.get("wait_p95_s")
    return (
        row["framework"], str(row["workers"]), fmt(row.get("samples_per_s"), ".1f"),
        fmt(row.get("starvation"), ".2f"), fmt(row.get("accelerator_utilization"), ".2f"),
        row.get("input_bound") or "-", fmt(row.get("ttfb_s"), ".2f"),
        fmt(None if wait_p95 is None else wait_p95 * 1e3, ".1f"),
        fmt((row.get("peak_pss_bytes") or 0) / 1e6 or None, ".0f"),
        fmt((row.get("peak_rss_bytes") or 0) / 1e6 or None, ".0f"),
        fmt(row.get("cpu_util"), ".2f"), fmt(row.get("contention"), ".2f"), status,
    )


def results_table(rows: Sequence[Row], title: str) -> Table:
    """A rich table of the rows, one line per run."""
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("framework", "input-bound", "status") else "right",
                         overflow="fold")
    for row in sorted_rows(rows):
        table.add_row(*table_cells(row))
    return table


def context_of(rows: Sequence[Row]) -> str:
    """"emulated:20ms on cpu, 2 CPUs per run": what every run of the rows shared."""
    settings = rows[0].get("settings", {}) if rows else {}
    devices = sorted({r["device"] for r in rows if r.get("device")}) or [settings.get("device", "?")]
    return (f"{settings.get('workload', '?')} on {', '.join(devices)}, "
            f"{plural(settings.get('cpus', '?'), 'CPU')} per run")


def title_of(rows: Sequence[Row]) -> str:
    """"image: emulated:20ms on cpu, 2 CPUs per run"."""
    task = rows[0].get("settings", {}).get("task", "?") if rows else "?"
    return f"{task}: {context_of(rows)}"


def describe(row: Row) -> list[str]:
    """One run, readably: what was run and what it measured."""
    head = f"{row['task']} {row['framework']} workers={row['workers']}: {context_of([row])}"
    if not row["ok"]:
        return [head, f"  FAILED: {row.get('error')}"]
    ms = lambda key: fmt(None if row.get(key) is None else row[key] * 1e3, ".1f")  # noqa: E731
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
        f"  peak memory        PSS {fmt_bytes(row['peak_pss_bytes'])}, RSS {fmt_bytes(row['peak_rss_bytes'])}, "
        f"device {fmt_bytes(row.get('peak_device_bytes'))}",
        f"  CPU used           {row['cpu_util']:.2f} cores; contention {fmt(row.get('contention'), '.3f')}"
        + (" (other processes used its CPUs: above 0.05, no verdict is drawn from this run)"
           if contended(row.get("contention")) else ""),
        # text: records the corpus reader dropped (empty, unreadable); image: samples skipped by on_error
        f"  {'records' if row['task'] == 'text' else 'samples'} skipped    {row['skipped']}",
    ]


def plural(count: Any, noun: str) -> str:
    """"1 CPU", "2 CPUs"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def at_workers(workers: int | str) -> str:
    """"at 1 worker", "at 4 workers", "at AUTOTUNE"."""
    if workers == AUTOTUNE:
        return "at AUTOTUNE"
    return f"at {plural(workers, 'worker')}"
