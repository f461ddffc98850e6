"""`feedbench report DIR`: the table, plots and report.md again, from saved results."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from feedbench.pipelines.cli.options import one_line_errors
from feedbench.pipelines.cli.progress import stdout_console
from feedbench.pipelines.core.errors import OutputError
from feedbench.pipelines.harness.store import RESULTS_JSON, RESULTS_PARQUET, ResultStore


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `report` to the CLI."""
    report = commands.add_parser("report", help="redraw the table, plots and report.md from saved results",
                                 description="Reads DIR/results.json (made by compare, sweep or demo) and draws "
                                 "the table, DIR/throughput.png, DIR/memory.png and DIR/report.md again; or "
                                 "DIR/stages.json (made by explain) and draws its plots and explain.md again; or "
                                 "DIR/capacity.json (made by capacity) and draws capacity.png and capacity.md again.")
    report.add_argument("out", metavar="DIR", help="a folder of results")
    one_line_errors(report)
    report.set_defaults(run=_run)


def show(out: Path, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Prints the results table, draws the plots and report.md; returns the verdict and paths.
    Where the plots or report cannot be written, the verdict is printed before the error."""
    from feedbench.pipelines.harness import report

    stdout_console().print(report.results_table(rows, report.title_of(rows)))
    targets = report.au_targets(report.recommendations(out))  # a sweep's --target-au, where one was saved
    verdict = list(report.verdict(rows, targets))
    with printed_if_unwritten(verdict):
        paths = report.render(out, rows)
    return [*verdict, f"results: {out / RESULTS_JSON}, {out / RESULTS_PARQUET}",
            f"plots:   {', '.join(str(p) for p in paths if p.suffix == '.png')}",
            f"report:  {paths[-1]}"]


@contextlib.contextmanager
def printed_if_unwritten(lines: Sequence[str] = (),
                         rows: Callable[[], Sequence[dict[str, Any]]] = tuple) -> Iterator[None]:
    """On an OutputError in the block, prints the table of the rows that `rows()` gives then
    and `lines` (figures measured but not saved) to stdout before the error goes on: a figure
    is never lost to a full disk."""
    try:
        yield
    except OutputError:
        rows = rows()
        if rows:
            from feedbench.pipelines.harness import report

            stdout_console().print(report.results_table(rows, report.title_of(rows)))
        for line in lines:
            print(line)
        raise


def _run(args: argparse.Namespace) -> list[str]:
    from feedbench.pipelines.harness.report import capacity, explain

    folder = Path(args.out)
    if (folder / capacity.CAPACITY_JSON).is_file() and not (folder / RESULTS_JSON).exists():
        paths = capacity.redraw(folder)
        return [f"capacity: {paths[-1]}", f"plot: {paths[0]}"]
    if (folder / explain.STAGES_JSON).is_file() and not (folder / RESULTS_JSON).exists():
        paths = explain.redraw(folder)
        return [f"explanation: {paths[-1]}", f"plots: {', '.join(str(p) for p in paths if p.suffix == '.png')}"]
    with ResultStore.load(args.out, hold=True) as store:
        if not store.rows:
            return [f"{Path(args.out) / RESULTS_JSON} holds no runs yet"]
        return show(Path(args.out), store.rows)
