"""`feedbench explain`: why a pipeline starves. Each stage's cost per sample, for each framework,
from prefixes of the pipeline run on one CPU; the ceilings through the consumer loop; the
workers needed for a target AU (harness/explain.py, the definitions in harness/attribution.py)."""

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
from feedbench.pipelines.core.errors import ConfigError, OutputError
from feedbench.pipelines.loop.result import RunResult


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `explain` to the CLI."""
    explain = commands.add_parser(
        "explain", help="why it starves: each stage's cost per sample, the ceilings, the workers needed",
        description="Attributes each framework's per-sample cost to its stages (read, decode, transform, batch, "
        "deliver, copy, step; text: read, tokenize, encode, ...), each the difference between two prefixes of the "
        "pipeline run on one CPU; measures the ceilings through the consumer loop on --cpus (the workload alone, the "
        "pipeline's batches replayed from memory, the pipeline warm and with its files' pages evicted); predicts the "
        "workers that reach --target-au and measures that count. Writes DIR/stages.json, stages.parquet, "
        "stages.png, ceilings.png and explain.md.")
    add_settings_options(explain)
    explain.add_argument("--frameworks", help=FRAMEWORKS_HELP)
    explain.add_argument("--out", required=True, metavar="DIR", help="folder for the files (made if missing)")
    explain.add_argument("--workers", type=int, metavar="N",
                         help="workers of the ceilings' runs (default: one per CPU of --cpus less one, at least 1)")
    explain.add_argument("--target-au", type=float, default=0.9, metavar="AU",
                         help="accelerator utilization the workers are predicted for, in (0, 1] (default 0.9)")
    explain.add_argument("--repeats", type=int, default=1, metavar="R",
                         help="runs of each one-CPU measurement, each in its own process, the median taken "
                              "(default 1, at most 9)")
    explain.add_argument("--sweep", metavar="DIR",
                         help="a sweep's --out folder with the same settings: its recommendation is shown beside "
                         "the prediction")
    explain.add_argument("--retry-contended", action="store_true",
                         help="measure again a run that shared its CPUs with other processes (contention above "
                         "0.05), up to 3 runs in all")
    one_line_errors(explain)
    explain.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    from feedbench.pipelines.harness.explain import ExplainPlan, explain_into
    from feedbench.pipelines.harness.report.explain import EXPLAIN_MD, STAGES_JSON

    frameworks = frameworks_of(args)
    settings = settings_from_args(args, frameworks)
    if args.sweep is not None and not Path(args.sweep).is_dir():
        raise ConfigError(f"--sweep {args.sweep}: no such folder")
    try:
        plan = ExplainPlan(settings.measure, workers=args.workers, target_au=args.target_au, repeats=args.repeats,
                           sweep=args.sweep, retry_contended=args.retry_contended)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (--workers, --target-au, --repeats)") from None
    console = stdout_console()

    def on_run(framework: str, role: str) -> None:
        console.print(f"{framework}: measuring {role} ...", highlight=False)

    def on_result(framework: str, role: str, result: RunResult) -> None:
        figure = f"{result.samples_per_s:,.1f} samples/s" if result.ok else f"failed: {result.error}"
        console.print(f"{framework}: {role}: {figure}", highlight=False)

    out = Path(args.out)
    command = "feedbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["explain"] \
        else f"feedbench explain --task {settings.task} --data {settings.data}"
    found: list = []
    try:
        explain_into(out, settings, frameworks, plan, command=command, on_run=on_run, on_result=on_result,
                     on_framework=found.append)
    except KeyboardInterrupt:
        print(f"feedbench: the runs measured so far are in {out / STAGES_JSON}", file=sys.stderr)
        raise
    except OutputError:
        print("\n".join(sentences(found)))  # what was measured, before the error says what was not written
        raise
    return [*sentences(found), f"explanation: {out / EXPLAIN_MD}"]


def sentences(found: list) -> list[str]:
    """The bottleneck and feeding sentences of each framework explained."""
    from feedbench.pipelines.harness import attribution

    lines = []
    for one in found:
        lines.append(attribution.bottleneck_sentence(one))
        feeding = attribution.feeding_sentence(one)
        if feeding:
            lines.append(feeding)
    return lines
