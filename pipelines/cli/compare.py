"""`feedbench compare`: a grid of frameworks x worker counts at one CPU budget, each cell in
a fresh process, saved row by row; then the table, plots and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feedbench.pipelines import registry
from feedbench.pipelines.cli.options import (
    FRAMEWORKS_HELP,
    add_settings_options,
    check_retry,
    one_line_errors,
    parse_workers,
    settings_from_args,
)
from feedbench.pipelines.cli.progress import cell_progress
from feedbench.pipelines.cli.report import printed_if_unwritten, show
from feedbench.pipelines.core.errors import ConfigError, FeedbenchError
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.harness.grid import run_grid
from feedbench.pipelines.harness.plan import Settings, cells
from feedbench.pipelines.harness.store import ResultStore


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `compare` to the CLI."""
    compare = commands.add_parser(
        "compare", help="frameworks x worker counts at one CPU budget: table, plots, report",
        description="Measures every framework at every worker count, each run in a fresh process pinned to the "
        "same CPUs, saving each row as it finishes (--resume continues an interrupted grid). Writes "
        "DIR/results.json and .parquet, DIR/throughput.png, DIR/memory.png and DIR/report.md.")
    add_settings_options(compare)
    compare.add_argument("--frameworks", help=FRAMEWORKS_HELP)
    compare.add_argument("--workers", help="comma-separated counts, autotune allowed "
                         "(default: 0, 1, 2, 4, ... up to the CPUs of --cpus)")
    compare.add_argument("--out", required=True, metavar="DIR", help="folder for the results, plots and report")
    compare.add_argument("--resume", action="store_true",
                         help="continue the results in DIR: run only the cells they lack (same settings only)")
    compare.add_argument("--retry-failed", action="store_true",
                         help="with --resume: run the cells whose saved run failed again too")
    compare.add_argument("--retry-contended", action="store_true",
                         help="measure again a run that shared its CPUs with other processes (contention above "
                         "0.05), up to 3 runs in all; with --resume, saved ones too")
    compare.add_argument("--capacity", metavar="ACCELERATOR",
                         help="also search how many emulated accelerators of this profile (h100-resnet50, "
                         "a100-resnet50, h100-unet3d, or step=224ms,batch=400) each framework feeds on these CPUs "
                         "(feedbench capacity, into DIR/capacity; its window: --seconds, default 10), shown in the "
                         "report side by side")
    one_line_errors(compare)
    compare.set_defaults(run=_run)


def default_worker_counts(cores: int | None = None) -> list[int]:
    """0, then powers of two below the core count, then the core count itself (`cores`: the
    CPU budget of the runs; default all this process may use)."""
    cores = cores or len(usable_cpus())
    counts, n = [0], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return [*counts, cores]


def parse_list(text: str | None, flag: str) -> list[str]:
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if text is not None and not items:
        raise ConfigError(f"{flag} needs at least one value, got {text!r}")
    if len(set(items)) != len(items):
        raise ConfigError(f"{flag} names a value twice: {text!r}")
    return items


def frameworks_of(args: argparse.Namespace) -> list[str]:
    return parse_list(args.frameworks, "--frameworks") or registry.defaults(args.task)


def compare(settings: Settings, frameworks: list[str], workers: list, out: Path, *, resume: bool,
            retry_failed: bool = False, retry_contended: bool = False, what: str = "compare") -> list[str]:
    """Runs the grid into `out` (resuming when asked, failed cells again with `retry_failed`, cells
    that shared their CPUs again with `retry_contended`),
    then shows and reports it."""
    settings.check_frameworks(frameworks)
    with ResultStore.open(out, settings, resume=resume, retry_failed=retry_failed,
                          retry_contended=retry_contended) as store:
        grid = cells(frameworks, workers)
        todo = sum(store.measured(cell) is None for cell in grid)
        lines = ([f"{len(grid) - todo} of {len(grid)} cells were already in {out}; ran {todo}"]
                 if todo < len(grid) else [])
        try:
            with printed_if_unwritten(rows=lambda: store.rows), cell_progress(what, todo) as (start, done):
                run_grid(settings, grid, store, command="compare", on_start=start, on_done=done)
        except KeyboardInterrupt:
            saved = sum(store.find(cell) is not None for cell in grid)
            print(f"feedbench: {saved} of {len(grid)} cells are saved in {out}; the same command with --resume "
                  "runs the rest", file=sys.stderr)
            raise
        rows = [store.find(cell) for cell in grid]
        lines = show(out, store.rows) + lines
    if not any(row["ok"] for row in rows):
        raise FeedbenchError(f"every run of the grid failed (report in {out}); the first: {rows[0]['error']}")
    return lines


def _run(args: argparse.Namespace) -> list[str]:
    task_frameworks = frameworks_of(args)
    settings = settings_from_args(args, task_frameworks)
    workers = [parse_workers(w) for w in parse_list(args.workers, "--workers")] or default_worker_counts(settings.cpus)
    check_retry(args)
    sized = capacity_settings(settings, args.capacity) if args.capacity else None
    lines = compare(settings, task_frameworks, workers, Path(args.out), resume=args.resume,
                    retry_failed=args.retry_failed, retry_contended=args.retry_contended)
    if sized is not None:
        lines += _capacity(sized, task_frameworks, Path(args.out), resume=args.resume)
    return lines


def capacity_settings(settings: Settings, name: str) -> tuple[Settings, object]:
    """The capacity search's settings beside a comparison: the same data, options and CPUs; the
    accelerator's batch and step; a window of the comparison's --seconds (default 10)."""
    import dataclasses

    from feedbench.pipelines.harness.capacity import CapacityPlan
    from feedbench.pipelines.harness.capacity_search import parse_accelerator

    accelerator = parse_accelerator(name)
    measure = dataclasses.replace(settings.measure, workload=accelerator.workload, steps=None,
                                  seconds=settings.measure.seconds or 10.0, device="cpu")
    options = {**settings.options, "batch_size": accelerator.batch_size}
    return Settings(task=settings.task, data=settings.data, measure=measure, options=options), CapacityPlan(accelerator)


def _capacity(sized: tuple[Settings, object], frameworks: list[str], out: Path, *, resume: bool) -> list[str]:
    """`feedbench capacity` of the compared frameworks into out/capacity; the report shows it."""
    from feedbench.pipelines.cli.progress import stdout_console
    from feedbench.pipelines.harness import report
    from feedbench.pipelines.harness.capacity import capacity_into
    from feedbench.pipelines.harness.report.capacity import CAPACITY_MD, headline
    from feedbench.pipelines.harness.report.markdown import CAPACITY_DIR

    settings, plan = sized
    folder = out / CAPACITY_DIR
    stdout_console().rule(f"{settings.task}: how many emulated {plan.accelerator.name} these CPUs feed")
    found = capacity_into(folder, settings, frameworks, plan, command=f"feedbench compare ... --capacity "
                          f"{plan.accelerator.name}", resume=resume or folder.is_dir())
    with ResultStore.load(out, hold=False) as store:
        report.render(out, store.rows)
    return [*(headline(f, one, plan.accelerator.name, settings.cpus) for f, one in found.items()),
            f"capacity: {folder / CAPACITY_MD}"]


