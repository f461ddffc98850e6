"""The `feedbench` command. The library raises; this prints one line and sets the exit code."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from feedbench.pipelines.cli import capacity, compare, data, demo, explain, options, report, run, service, sweep
from feedbench.pipelines.core.errors import FeedbenchError
from feedbench.pipelines.core.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedbench",
        description="Does your input pipeline keep the accelerator fed? Generate data, then measure "
        "PyTorch and tf.data input pipelines with one consumer loop.",
    )
    parser.add_argument("--version", action="version", version=f"feedbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens, to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.add_parser(commands)
    demo.add_parser(commands)
    run.add_parser(commands)
    compare.add_parser(commands)
    sweep.add_parser(commands)
    explain.add_parser(commands)
    capacity.add_parser(commands)
    report.add_parser(commands)
    service.add_parser(commands)
    _one_line_errors_everywhere(parser)
    return parser


def _one_line_errors_everywhere(parser: argparse.ArgumentParser) -> None:
    """A usage error of any (sub)command is one line, as every other error."""
    options.one_line_errors(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _one_line_errors_everywhere(sub)


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as an interrupt: a grid keeps its finished cells and ends the run in
    flight and its workers, as for Ctrl-C (Python's default for SIGTERM ends at once, leaving
    the workers behind)."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted,
    143 terminated)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        lines = args.run(args)
    except FeedbenchError as exc:
        print(f"feedbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        what, status = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"feedbench: {what}; nothing half-written was left in place", file=sys.stderr)
        return status
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
