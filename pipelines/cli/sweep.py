"""`feedbench sweep`: the fewest workers that keep the consumer busy, without measuring every
count. The search is :func:`feedbench.pipelines.harness.sweep.recommend`; this wires it to isolated
runs whose rows are saved like a grid's (so a sweep resumes, and its rows are reported)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from feedbench.pipelines import registry
from feedbench.pipelines.cli.options import add_settings_options, check_retry, one_line_errors, settings_from_args
from feedbench.pipelines.cli.progress import cell_progress
from feedbench.pipelines.cli.report import printed_if_unwritten, show
from feedbench.pipelines.core.errors import ConfigError, FeedbenchError
from feedbench.pipelines.core.files import write_text_atomically
from feedbench.pipelines.harness.grid import Measurer
from feedbench.pipelines.harness.store import ResultStore
from feedbench.pipelines.harness.sweep_rule import Recommendation


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `sweep` to the CLI."""
    sweep = commands.add_parser(
        "sweep", help="the fewest workers that reach a target accelerator utilization",
        description="Searches the worker counts of one framework for the smallest that keeps the consumer busy "
        "(AU >= --target-au), measuring as few counts as it can (tf: AUTOTUNE too). Each run is isolated and "
        "saved in DIR/results.* as it finishes; --resume reuses them.")
    add_settings_options(sweep)
    sweep.add_argument("--framework", required=True, help=f"the backend: {', '.join(registry.all_frameworks())}")
    sweep.add_argument("--out", required=True, metavar="DIR", help="folder for the results, plots and report")
    sweep.add_argument("--target-au", type=float, default=0.9, metavar="AU",
                       help="accelerator utilization to reach, in (0, 1] (default 0.9)")
    sweep.add_argument("--max-workers", type=int, metavar="N",
                       help="largest count to try (default: the CPUs of --cpus, else all usable)")
    sweep.add_argument("--min-workers", type=int, default=1, metavar="N", help="smallest count to try (default 1)")
    sweep.add_argument("--exhaustive", action="store_true",
                       help="measure every count from --min-workers to --max-workers")
    sweep.add_argument("--resume", action="store_true", help="reuse the runs already in DIR (same settings only)")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="with --resume: measure the counts whose saved run failed again")
    sweep.add_argument("--retry-contended", action="store_true",
                       help="measure again a run that shared its CPUs with other processes (contention above "
                       "0.05), up to 3 runs in all; with --resume, saved ones too")
    one_line_errors(sweep)
    sweep.set_defaults(run=_run)


def _recommend():
    try:
        from feedbench.pipelines.harness.sweep import recommend
    except ImportError as exc:
        raise FeedbenchError(f"the sweep search (feedbench.pipelines.harness.sweep) cannot be imported: {exc}") from exc
    return recommend


def _run(args: argparse.Namespace) -> list[str]:
    recommend = _recommend()
    if args.service or dict(args.option).get("service"):
        raise ConfigError("--service: a sweep varies the number of service workers, and an existing service's "
                          "dispatcher has its own; sweep without --service (a local service of each count, within "
                          "--cpus) to learn how many workers to run")
    settings = settings_from_args(args, [args.framework])
    if not 0 < args.target_au <= 1:
        raise ConfigError(f"--target-au must be in (0, 1], got {args.target_au}")
    max_workers = args.max_workers if args.max_workers is not None else settings.cpus
    if args.min_workers < 0 or max_workers < max(args.min_workers, 1):
        raise ConfigError(f"--min-workers {args.min_workers} and --max-workers {max_workers}: "
                          "need 0 <= min <= max, max >= 1")
    out = Path(args.out)
    check_retry(args)
    with ResultStore.open(out, settings, resume=args.resume, retry_failed=args.retry_failed,
                          retry_contended=args.retry_contended) as store:
        try:
            progress = cell_progress(f"sweep {args.framework}", None)
            with printed_if_unwritten(rows=lambda: store.rows), progress as (start, done):
                measure = Measurer(settings, args.framework, store, on_start=start, on_done=done)
                chosen = recommend(measure, max_workers=max_workers, target_au=args.target_au,
                                   autotune=registry.backend(settings.task, args.framework).tunes_itself,
                                   exhaustive=args.exhaustive, min_workers=args.min_workers)
        except KeyboardInterrupt:
            print(f"feedbench: the runs measured so far are saved in {out}; the same command with --resume reuses them",
                  file=sys.stderr)
            raise
        record = {"framework": args.framework, "task": settings.task, "target_au": args.target_au,
                  "lines": list(chosen.lines()), "measured_now": measure.ran, "read_back": measure.reused,
                  "recommendation": chosen.to_dict()}
        path = out / f"recommendation-{args.framework}.json"
        text = json.dumps(record, indent=1, sort_keys=True, default=str)
        with printed_if_unwritten(list(chosen.lines()), rows=lambda: store.rows):
            write_text_atomically(path, text + "\n")
        lines = show(out, store.rows)
    return [*lines, *chosen.lines(), *_remote_workers(registry.backend(settings.task, args.framework), chosen),
            f"the search took {chosen.runs} runs; this command measured {measure.ran} and read {measure.reused} "
            f"back from {out}",
            f"recommendation: {path}"]


def _remote_workers(entry: registry.Backend, chosen: Recommendation) -> list[str]:
    """For a backend whose workers are other processes (tf-service, ray): how many workers of
    this machine's speed keep the accelerator at the target, past the CPUs measured here
    (ceil(target x demand / one worker's rate), the sweep's own model, linear scaling)."""
    if not entry.remote_workers or chosen.prediction is None:
        return []
    rate = 1 / chosen.prediction.sample_cost_s
    needed = max(1, math.ceil(chosen.target_au * chosen.prediction.demand_samples_per_s / rate - 1e-9))
    measured = chosen.prediction.cost_measured
    bound = "" if measured else " at most (the probe was not input bound)"
    makes = "makes" if measured else "makes at least"
    return [f"remote workers: {needed}{bound} {entry.remote_workers} of this machine's speed reach AU "
            f"{chosen.target_au:.2f} (one {makes} {rate:.0f} samples/s; the workload takes "
            f"{chosen.prediction.demand_samples_per_s:.0f} at AU 1); run that many with --service or on a Ray cluster"]
