"""`feedbench capacity`: how many emulated accelerators these CPUs feed at once, each a rank with
its own loader over its shard of the data, every rank at the target AU (harness/capacity.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from feedbench.pipelines.cli.compare import frameworks_of
from feedbench.pipelines.cli.options import (
    FRAMEWORKS_HELP,
    add_settings_options,
    one_line_errors,
    settings_from_args,
)
from feedbench.pipelines.cli.progress import stdout_console
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.loop.config import from_options


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `capacity` to the CLI."""
    from feedbench.pipelines.harness.capacity_search import PROFILES

    capacity = commands.add_parser(
        "capacity", help="how many emulated accelerators these CPUs feed at the target AU (MLPerf Storage style)",
        description="Runs N emulated accelerators at once, each a rank in its own process with its own loader over "
        "its shard of the data, all on --cpus, their windows opened together, and searches the largest N at which "
        "every rank holds --target-au (each N measured once). Below one, the score is the AU one accelerator "
        "alone reaches. Writes DIR/capacity.json (after every N), capacity.png and capacity.md.")
    add_settings_options(capacity)
    capacity.add_argument("--accelerator", default="h100-resnet50", metavar="NAME",
                          help=f"{', '.join(PROFILES)} (MLPerf Storage / DLIO workload configs), or a custom one: "
                          "step=224ms,batch=400 (default h100-resnet50); it sets the batch size and the workload")
    capacity.add_argument("--frameworks", help=FRAMEWORKS_HELP)
    capacity.add_argument("--out", required=True, metavar="DIR", help="folder for the files (made if missing)")
    capacity.add_argument("--target-au", type=float, default=0.9, metavar="AU",
                          help="the AU every rank must hold, in (0, 1] (default 0.9, MLPerf Storage's)")
    capacity.add_argument("--max-ranks", type=int, metavar="N", help="the most accelerators tried (default: 4 per CPU)")
    capacity.add_argument("--workers", type=int, metavar="W",
                          help="workers of each rank (default: tuned for each N by the sweep's search, from 1 to "
                          "the budget's CPUs shared out among the ranks)")
    capacity.add_argument("--resume", action="store_true", help="go on with the capacity run saved in --out")
    one_line_errors(capacity)
    capacity.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    from feedbench.pipelines.harness.capacity import CapacityPlan, capacity_into
    from feedbench.pipelines.harness.capacity_search import describe_points, parse_accelerator
    from feedbench.pipelines.harness.report.capacity import CAPACITY_MD, headline
    from feedbench.pipelines.harness.report.table import fmt_bytes

    accelerator = parse_accelerator(args.accelerator)
    for flag, value in (("--batch-size", args.batch_size), ("--workload", args.workload)):
        if value is not None:
            raise ConfigError(f"{flag}: the accelerator sets it ({accelerator.describe()}); give --accelerator "
                              "step=...,batch=... to change it")
    if args.steps is not None:
        raise ConfigError("--steps: the ranks' windows are of --seconds (the same wall-clock window for every rank)")
    args.batch_size = accelerator.batch_size
    frameworks = frameworks_of(args)
    settings = settings_from_args(args, frameworks)
    fixed = {"workload": accelerator.workload, "seconds": args.seconds or 10.0}
    if args.device is None:
        fixed["device"] = "cpu"
    settings = type(settings)(task=settings.task, data=settings.data,
                              measure=from_options(vars(args), **fixed).with_cpus(), options=settings.options)
    try:
        plan = CapacityPlan(accelerator, target_au=args.target_au, max_ranks=args.max_ranks, workers=args.workers)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (--target-au, --max-ranks, --workers)") from None
    console = stdout_console()
    console.print(f"capacity of {', '.join(frameworks)} on {settings.cpus} CPU(s): emulated {accelerator.describe()}",
                  highlight=False)

    def on_point(framework: str, point) -> None:
        console.print(f"{framework}: {describe_points([point])[0]}; tree {fmt_bytes(point.run.peak_pss_bytes)} PSS",
                      highlight=False)

    out = Path(args.out)
    command = "feedbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["capacity"] \
        else f"feedbench capacity --task {settings.task} --data {settings.data}"
    try:
        found = capacity_into(out, settings, frameworks, plan, command=command, resume=args.resume,
                              on_point=on_point)
    except KeyboardInterrupt:
        print(f"feedbench: the N measured so far are in {out / 'capacity.json'} (--resume goes on)", file=sys.stderr)
        raise
    lines = [f"{headline(f, one, accelerator.name, settings.cpus)}: {one.reason}" for f, one in found.items()]
    return [*lines, f"report: {out / CAPACITY_MD}"]
