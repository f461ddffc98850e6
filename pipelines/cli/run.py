"""`feedbench run`: one isolated measured run. Also the options that run, compare and sweep
share (declared here once), and the progress display of their cells."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from feedbench.pipelines import registry
from feedbench.pipelines.core.errors import ConfigError, FeedbenchError
from feedbench.pipelines.harness.grid import AUTOTUNE, Cell, Settings, run_cell
from feedbench.pipelines.harness.store import write_atomically

# Pipeline options that have a flag of their own; any other goes through --option KEY=VALUE.
FLAGS = {"batch_size": "--batch-size", "tokenizer": "--tokenizer"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `run` to the CLI."""
    run = commands.add_parser(
        "run", help="one measured run in a fresh process: a framework's pipeline feeding the consumer loop",
        description="One isolated measured run: the pipeline of --task in --framework over --data, feeding "
        "--workload on --device, pinned to --cpus. Prints what it measured.")
    add_settings_options(run)
    run.add_argument("--framework", required=True, help="the framework: torch or tf")
    run.add_argument("--workers", metavar="N|autotune", default=None,
                     help="loader workers (torch processes, tf.data parallel calls; default: one per CPU of --cpus "
                     "less one, at least 1)")
    run.add_argument("--json", metavar="FILE", help="also write the run's row (RunResult, settings, machine) as JSON")
    one_line_errors(run)
    run.set_defaults(run=_run)


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """The options of what is measured and how, shared by run, compare and sweep."""
    group = parser.add_argument_group("what is measured, and how (the same for every run of a command)")
    group.add_argument("--task", required=True, help=f"the task: {', '.join(registry.tasks())}")
    group.add_argument("--data", required=True, metavar="PATH",
                       help="the dataset: an ImageFolder or Parquet shards (image); a corpus folder, JSONL or Parquet (text)")
    group.add_argument("--batch-size", type=int, metavar="B", help="samples per batch (default: the pipeline's, 64)")
    group.add_argument("--workload", default="emulated:20ms",
                       help="the consumer's step: emulated:<time> (e.g. emulated:20ms), resnet18, resnet50 or textcls "
                       "(default emulated:20ms)")
    group.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N (default auto)")
    group.add_argument("--cpus", type=int, metavar="K",
                       help="pin every run, its workers included, to K CPUs (default: all this process may use)")
    window = group.add_mutually_exclusive_group()
    window.add_argument("--steps", type=int, metavar="S", help="measured steps per run (default 50)")
    window.add_argument("--seconds", type=float, metavar="T", help="measured seconds per run, instead of --steps")
    group.add_argument("--warmup", default="auto", metavar="N|auto",
                       help="loader steps before the window (default auto: 2 x workers x prefetch + 4)")
    group.add_argument("--tokenizer", help="text only: spacy, nltk or regex (default: the pipeline's, spacy)")
    group.add_argument("--option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="any other pipeline option, e.g. --option image_size=160 --option output=uint8 (repeatable)")
    group.add_argument("--limit-s", type=float, default=600.0, metavar="S",
                       help="kill a run that takes longer than this, start-up included (default 600)")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option must look like KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a plain word: uint8, spacy
    return key.strip(), value


def _warmup(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--warmup must be a number of steps or auto, got {text!r}") from None


def settings_from_args(args: argparse.Namespace, frameworks: Sequence[str]) -> Settings:
    """The Settings the shared options describe, checked against each framework's pipeline."""
    options = dict(args.option)
    for name, flag in FLAGS.items():
        if name in options:
            raise ConfigError(f"--option {name}=...: use {flag}")
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    settings = Settings(task=args.task, data=args.data, workload=args.workload, device=args.device, cpus=args.cpus,
                        steps=args.steps, seconds=args.seconds, warmup=_warmup(args.warmup), limit_s=args.limit_s,
                        options=options)
    for framework in frameworks:
        registry.make_config(settings.task, framework, {"workers": 0})  # the framework itself first
        for name, value in options.items():
            try:
                registry.make_config(settings.task, framework, {name: value, "workers": 0})
            except ConfigError as exc:
                raise ConfigError(f"{FLAGS.get(name, '--option ' + name)} {value}: {exc}") from None
    settings.check_frameworks(frameworks)
    return settings


def default_workers(cpus: int) -> int:
    """One worker per CPU of the budget, less one for the consumer, at least 1."""
    return max(1, cpus - 1)


def parse_workers(text: str, flag: str = "--workers") -> int | str:
    """A worker count (an integer >= 0) or "autotune"."""
    word = text.strip().lower()
    if word == AUTOTUNE:
        return word
    try:
        count = int(word)
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(f"{flag} takes integers >= 0 or autotune, got {text!r}")
    return count


def check_retry(args: argparse.Namespace) -> None:
    """--retry-failed only makes sense with --resume: there are no failed cells to retry otherwise."""
    if args.retry_failed and not args.resume:
        raise ConfigError("--retry-failed needs --resume (it runs the failed cells of saved results again)")


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Makes `parser` report a usage error in one line (name, message, where help is)."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]


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


def _run(args: argparse.Namespace) -> list[str]:
    from feedbench.pipelines.harness.report import describe

    settings = settings_from_args(args, [args.framework])
    workers = default_workers(settings.cpus) if args.workers is None else parse_workers(args.workers)
    cell = Cell(args.framework, workers)
    with cell_progress("run", 1) as (start, done):
        start(cell, 1, 1)
        row = run_cell(settings, cell, command="run")
        done(cell, row)
    if args.json:
        text = json.dumps(row, indent=1, sort_keys=True)
        try:
            write_atomically(Path(args.json), lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--json {args.json}: cannot write there ({exc.strerror})") from exc
    if not row["ok"]:
        raise FeedbenchError(f"the run failed: {row['error']}")
    lines = describe(row)
    return [*lines, f"written to {args.json}"] if args.json else lines

