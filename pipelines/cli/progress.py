"""What the CLI shows while it works: progress bars, one line per finished cell, and the console for tables
(the library reports progress through plain callbacks)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from feedbench.pipelines.harness.plan import Cell


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields a callback that advances a bar of `total` items on stderr."""
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)


def summary(row: dict[str, Any]) -> str:
    """A cell's result in a few words."""
    if not row["ok"]:
        return f"FAILED: {row.get('error')}"
    return (f"{row['samples_per_s']:.1f} samples/s, starvation {row['starvation']:.2f}, "
            f"AU {row['accelerator_utilization']:.2f} ({row['wall_s']:.0f} s)")


@contextlib.contextmanager
def cell_progress(what: str, total: int | None) -> Iterator[tuple[Callable[..., None], Callable[..., None]]]:
    """Yields ``(on_start, on_done)`` for a grid's cells: a rich bar (which cell, how many
    done and left, elapsed) on a terminal; elsewhere one line per cell, both on stderr."""
    console = Console(file=sys.stderr)
    if not console.is_terminal:
        def start(cell: Cell, index: int, count: int | None) -> None:
            print(f"[{index}/{count or '?'}] {what}: {cell.label} ...", file=sys.stderr, flush=True)

        def done(cell: Cell, row: dict[str, Any]) -> None:
            print(f"    {cell.label}: {summary(row)}", file=sys.stderr, flush=True)

        yield start, done
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(what, total=total)

        def start(cell: Cell, index: int, count: int | None) -> None:
            left = f", {count - index + 1} left" if count else ""
            bar.update(task, description=f"{what}: {cell.label} (run {index}{left})")

        def done(cell: Cell, row: dict[str, Any]) -> None:
            bar.advance(task, 1)
            bar.console.print(f"  {cell.label}: {summary(row)}", highlight=False)

        yield start, done


def stdout_console() -> Console:
    """A console for tables: the terminal's width, or wide enough for a table in a file or pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=170)
