"""`feedbench run`: one isolated measured run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from feedbench.pipelines import registry
from feedbench.pipelines.cli.options import (
    add_settings_options,
    default_workers,
    one_line_errors,
    parse_workers,
    settings_from_args,
)
from feedbench.pipelines.cli.progress import cell_progress
from feedbench.pipelines.core.errors import ConfigError, FeedbenchError, OutputError
from feedbench.pipelines.core.files import check_writable, write_text_atomically
from feedbench.pipelines.harness.grid import run_cell
from feedbench.pipelines.harness.plan import Cell


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `run` to the CLI."""
    run = commands.add_parser(
        "run", help="one measured run in a fresh process: a framework's pipeline feeding the consumer loop",
        description="One isolated measured run: the pipeline of --task in --framework over --data, feeding "
        "--workload on --device, pinned to --cpus. Prints what it measured.")
    add_settings_options(run)
    run.add_argument("--framework", required=True, help=f"the backend: {', '.join(registry.all_frameworks())}")
    run.add_argument("--workers", metavar="N|autotune", default=None,
                     help="loader workers (torch processes, tf.data parallel calls; default: one per CPU of --cpus "
                     "less one, at least 1)")
    run.add_argument("--json", metavar="FILE", help="also write the run's row (RunResult, settings, machine) as JSON")
    one_line_errors(run)
    run.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    from feedbench.pipelines.harness.report import describe

    settings = settings_from_args(args, [args.framework])
    workers = default_workers(settings.cpus) if args.workers is None else parse_workers(args.workers)
    cell = Cell(args.framework, workers)
    if args.json:  # before measuring: a run's figures must not be lost to a file that cannot be written
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json}: is a folder; give a file name")
        check_writable(Path(args.json).parent, "--json's folder")
    with cell_progress("run", 1) as (start, done):
        start(cell, 1, 1)
        row = run_cell(settings, cell, command="run")
        done(cell, row)
    lines = describe(row) if row["ok"] else []
    if args.json:
        try:
            write_text_atomically(Path(args.json), json.dumps(row, indent=1, sort_keys=True) + "\n")
        except OutputError:
            print("\n".join(lines))  # what was measured, before the error says what was not written
            raise
    if not row["ok"]:
        raise FeedbenchError(f"the run failed: {row['error']}")
    return [*lines, f"written to {args.json}"] if args.json else lines
