"""The plots of a grid: throughput and starvation against workers, peak memory against workers.

Drawn with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.files import write_atomically
from feedbench.pipelines.harness.report.table import (
    Row,
    title_of,
    value_of,
    workers_key,
)

THROUGHPUT_PNG = "throughput.png"


MEMORY_PNG = "memory.png"


# matplotlib's tab10, one per framework of a plot (the two defaults and every contender)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _series(ax: Any, rows: Sequence[Row], key: str, scale: float, x: dict, style: str = "-",
            label_suffix: str = "", mark_failed: bool = True) -> None:
    """One line per framework over the worker counts; AUTOTUNE as a star, a failed run as an x at 0."""
    frameworks = sorted({r["framework"] for r in rows})
    for framework, color in zip(frameworks, COLORS):
        mine = [r for r in rows if r["framework"] == framework]
        counted = sorted((r for r in mine if r["workers"] != AUTOTUNE and r["ok"]),
                         key=lambda r: workers_key(r["workers"]))
        ax.plot([x[r["workers"]] for r in counted], [value_of(r, key) * scale for r in counted], style, marker="o",
                color=color, label=f"{framework}{label_suffix}")
        for row in mine:
            if row["workers"] == AUTOTUNE and row["ok"]:
                ax.plot([x[AUTOTUNE]], [value_of(row, key) * scale], marker="*", markersize=13, color=color,
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

    memory_figure = Figure(figsize=(8.5, 4.4), layout="constrained")
    memory = memory_figure.subplots()
    _series(memory, rows, "peak_pss_bytes", 1e-9, x, "-", " PSS", mark_failed=False)
    _series(memory, rows, "peak_rss_bytes", 1e-9, x, ":", " RSS", mark_failed=False)
    memory.set_ylabel("peak memory of the process tree (GB)")
    memory.set_title("Peak memory (PSS: shared pages counted once)")
    _axes_workers(memory, x, rows)
    # Beside the axes: two entries a framework (PSS, RSS) covered the lines once there were four.
    memory.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    memory_figure.suptitle(title)
    return throughput, memory_figure


def draw_plots(rows: Sequence[Row], out: Path) -> list[Path]:
    """Writes throughput.png and memory.png (see :func:`figures`); returns their paths."""
    paths = [out / THROUGHPUT_PNG, out / MEMORY_PNG]
    for figure, path in zip(figures(rows), paths):
        write_atomically(path, lambda tmp, figure=figure: figure.savefig(tmp, dpi=100, format="png"))
    return paths
