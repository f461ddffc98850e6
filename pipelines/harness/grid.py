"""Running a grid of measured runs: cells (framework x workers) at one setting, each in a fresh
subprocess at the same CPU budget, results kept row by row so that nothing is lost.

:func:`run_cell` measures one cell through :func:`~feedbench.pipelines.loop.isolation.run_isolated`
and returns its row: every RunResult field, the cell, the settings and the machine's facts.
:func:`run_grid` and :class:`Measurer` run the cells a
:class:`~feedbench.pipelines.harness.store.ResultStore` lacks and save each row as it comes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import psutil

from feedbench.pipelines.core.machine import machine_facts
from feedbench.pipelines.harness.plan import Cell, Settings, cell_spec, data_fingerprint
from feedbench.pipelines.loop.isolation import run_isolated
from feedbench.pipelines.loop.metrics import contended
from feedbench.pipelines.loop.result import RunResult

if TYPE_CHECKING:
    from feedbench.pipelines.harness.store import ResultStore

log = logging.getLogger(__name__)


def run_cell(settings: Settings, cell: Cell, *, command: str) -> dict[str, Any]:
    """Measures one cell in a fresh subprocess; returns its row (a failed run included).

    On KeyboardInterrupt the run in flight and its workers are ended before it propagates.
    """
    spec = cell_spec(settings, cell)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    try:
        result = run_isolated(spec)
    except KeyboardInterrupt:
        end_runs()
        raise
    return make_row(settings, cell, result, command=command, started_at=started_at,
                    wall_s=time.perf_counter() - started)


def make_row(settings: Settings, cell: Cell, result: RunResult, *, command: str, started_at: str,
             wall_s: float) -> dict[str, Any]:
    """A results row: the cell, every RunResult field, the settings and the machine's facts."""
    row = {"task": settings.task, "framework": cell.framework, "workers": cell.workers, "command": command,
           "started_at": started_at, "wall_s": wall_s}
    row.update(result.to_dict())
    row["settings"] = settings.to_dict()
    row.update(machine_facts())
    row["data_fingerprint"] = data_fingerprint(settings.data)
    return json.loads(json.dumps(row, default=str))


def end_runs() -> None:
    """Kills the isolated runs this process started, with their workers (an interrupt came)."""
    for child in multiprocessing.active_children():
        try:
            tree = [*psutil.Process(child.pid).children(recursive=True), psutil.Process(child.pid)]
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(tree, timeout=10)
        child.join(10)


OnStart = Callable[[Cell, int, "int | None"], None]


OnDone = Callable[[Cell, dict], None]


def _nothing(*_: Any) -> None:
    return None


CONTENDED_TRIES = 3  # runs of a cell at most, with retry_contended, until one has its CPUs to itself


def run_grid(settings: Settings, grid: Sequence[Cell], store: ResultStore, *, command: str,
             on_start: OnStart = _nothing, on_done: OnDone = _nothing) -> tuple[int, int]:
    """Measures the cells of `grid` that `store` has not measured, one after another, each row saved as
    it comes (a failed cell too, with its reason). Returns (cells run, cells already there).

    With ``store.retry_contended``, a run that shared its CPUs with other processes (contention
    above 0.05) is measured again, up to CONTENDED_TRIES runs in all; the least contended row is kept.
    `on_start(cell, index, total)` and `on_done(cell, row)` report progress.
    """
    todo = [cell for cell in grid if store.measured(cell) is None]
    for index, cell in enumerate(todo, 1):
        on_start(cell, index, len(todo))
        row = _measured_row(settings, cell, store, command)
        on_done(cell, row)
    return len(todo), len(grid) - len(todo)


def _measured_row(settings: Settings, cell: Cell, store: ResultStore, command: str) -> dict[str, Any]:
    """Measures `cell` (again while it shared its CPUs, where the store says so) and saves its row."""
    row = run_cell(settings, cell, command=command)
    for _ in range(CONTENDED_TRIES - 1):
        if not (store.retry_contended and row["ok"] and contended(row.get("contention"))):
            break
        log.info("%s shared its CPUs (contention %.2f): measuring it again", cell.label, row["contention"])
        again = run_cell(settings, cell, command=command)
        if again["ok"] and again["contention"] < row["contention"]:
            row = again
    store.add(row)
    return row


class Measurer:
    """``measure(workers) -> RunResult`` of one framework over a store, for the sweep: a cell
    the store holds is read back, not run again; a new one is run and saved at once.

    Attributes:
        ran: Cells measured by this object.
        reused: Cells read back from the store.
    """

    def __init__(self, settings: Settings, framework: str, store: ResultStore, *, command: str = "sweep",
                 on_start: OnStart = _nothing, on_done: OnDone = _nothing) -> None:
        self.settings, self.framework, self.store, self.command = settings, framework, store, command
        self.on_start, self.on_done = on_start, on_done
        self.ran = 0
        self.reused = 0

    def __call__(self, workers: int | str) -> RunResult:
        cell = Cell(self.framework, workers)
        row = self.store.measured(cell)
        if row is None:
            self.on_start(cell, self.ran + 1, None)
            row = _measured_row(self.settings, cell, self.store, self.command)
            self.ran += 1
            self.on_done(cell, row)
        else:
            self.reused += 1
        return RunResult.from_dict(row)
