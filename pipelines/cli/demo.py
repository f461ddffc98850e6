"""`feedbench demo`: the main job on embedded defaults.

Makes (or reuses) the default datasets in the cache, then compares the frameworks' image
pipelines, and their text pipelines where the text task is registered, on a small grid
suited to this machine (worker counts up to the cores, every run in a fresh process pinned
to the same CPUs, device auto), printing each comparison's table and verdict and where its
report is. A few minutes on 2 cores. The consumer loop's own check against producers of
known cost is ``python -m feedbench.pipelines.truth.validate`` (no longer run here: it measures
the harness, not the pipelines).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.table import Table

from feedbench.pipelines import registry
from feedbench.pipelines.cli.compare import compare, default_worker_counts, parse_list
from feedbench.pipelines.cli.options import one_line_errors, parse_workers
from feedbench.pipelines.cli.progress import progress_bar, stdout_console
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.core.files import cache_dir
from feedbench.pipelines.harness.plan import Settings, auto_warmup
from feedbench.pipelines.loop.config import MeasureConfig, add_options, from_options

IMAGE_BATCH, TEXT_BATCH = 32, 64
# Images the demo makes by default: at batch 32, 64 batches, so that one epoch holds the warm-up
# and the 50 measured steps at every worker count of a small machine (more where more is needed).
DEMO_IMAGES = 2048


def add_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="make the default datasets, then compare torch and tf.data pipelines on them",
        description="Makes the default datasets in the cache (if they are not there), then compares the "
        "frameworks' image pipelines (and text pipelines, where present) on a small grid suited to this machine, "
        "and prints the tables, verdicts and where the reports are.")
    demo.add_argument("--images", type=int, default=None, help="images in the default image set (default 2048, "
                      "or what one epoch needs to hold warm-up and steps at every worker count)")
    demo.add_argument("--documents", type=int, default=None, help="documents in the default corpus (default 2000)")
    demo.add_argument("--workers", help="comma-separated worker counts (default: 0, 1, 2, 4, ... up to the cores)")
    demo.add_argument("--out", metavar="DIR",
                      help="folder for the reports, DIR/image and DIR/text (default: a new one in <cache>/demo)")
    demo.add_argument("--resume", action="store_true", help="continue the results in --out DIR")
    # The measurement's own options; a window of steps, not seconds: the datasets are sized to hold it.
    add_options(demo.add_argument_group("how each run is measured").add_argument, skip=("cycle", "seconds", "cpus"))
    one_line_errors(demo)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> list[str]:
    from feedbench.datasets import defaults

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out DIR: the demo folder to continue")
    for flag, value in (("--images", args.images), ("--documents", args.documents)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    measure = from_options(vars(args))
    workers = [parse_workers(w) for w in parse_list(args.workers, "--workers")] or default_worker_counts()
    needed = batches_needed(workers, measure)
    n_images = max(DEMO_IMAGES, needed * IMAGE_BATCH) if args.images is None else args.images
    n_docs = defaults.DOCUMENTS if args.documents is None else args.documents
    plan_sizes = {"image": (n_images, IMAGE_BATCH), "text": (n_docs, TEXT_BATCH)}
    batches = {task: _batch(preferred, samples, needed, flag) for (task, (samples, preferred)), flag
               in zip(plan_sizes.items(), ("--images", "--documents"))}
    images, text = _datasets(n_images, n_docs)
    out = Path(args.out) if args.out else cache_dir() / "demo" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    plan = [("image", images.root, {"batch_size": batches["image"]})]
    if "text" in registry.tasks():
        plan.append(("text", text.root, {"batch_size": batches["text"]}))
    console = stdout_console()
    reports = []
    for task, source, options in plan:
        settings = Settings(task=task, data=source, measure=measure, options=options)
        console.rule(f"{task}: {', '.join(registry.defaults(task))} at {', '.join(map(str, workers))} workers")
        lines = compare(settings, registry.defaults(task), workers, out / task, resume=args.resume,
                        what=f"demo {task}")
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)
        for line in _explain(settings, out / task, resume=args.resume):
            console.print(line, highlight=False, soft_wrap=True)
        reports.append((task, out / task / "report.md"))
    missing = [] if "text" in registry.tasks() else ["the text pipelines are not registered in this version"]
    return [f"datasets in {defaults.data_dir()}", *(f"{task} report: {path}" for task, path in reports), *missing]


def _explain(settings: Settings, out: Path, *, resume: bool) -> list[str]:
    """`feedbench explain` of every framework of the task into out/explain (kept when resumed and
    complete), and report.md drawn again to link it."""
    import json

    from feedbench.pipelines.cli.explain import sentences
    from feedbench.pipelines.harness import attribution, report
    from feedbench.pipelines.harness.explain import ExplainPlan, command_line, explain_into
    from feedbench.pipelines.harness.report.explain import EXPLAIN_MD, STAGES_JSON
    from feedbench.pipelines.harness.report.markdown import EXPLAIN_DIR
    from feedbench.pipelines.harness.store import ResultStore

    folder = out / EXPLAIN_DIR
    saved = folder / STAGES_JSON
    if resume and saved.is_file() and json.loads(saved.read_text(encoding="utf-8")).get("complete"):
        found = [attribution.FrameworkExplanation.from_dict(one)
                 for one in json.loads(saved.read_text(encoding="utf-8"))["frameworks"]]
        return [f"why it starves (kept from {saved}):", *sentences(found)]
    stdout_console().rule(f"{settings.task}: why it starves (feedbench explain)")
    frameworks = registry.defaults(settings.task)
    found = explain_into(folder, settings, frameworks, ExplainPlan(settings.measure),
                         command=command_line(settings, frameworks, folder))
    with ResultStore.load(out, hold=True) as store:
        report.render(out, store.rows)
    return [*sentences(found), f"explanation: {folder / EXPLAIN_MD}"]


def batches_needed(workers: list, measure: MeasureConfig) -> int:
    """Batches one run reads at the most, over the worker counts: the warm-up (auto: what the
    most workers make ahead, see auto_warmup) plus the measured steps."""
    warmup = measure.warmup if measure.warmup != "auto" else max(auto_warmup(count, 2) for count in workers)
    return warmup + measure.steps


def _batch(preferred: int, samples: int, needed: int, flag: str) -> int:
    """The preferred batch, made smaller where the dataset is too small for one epoch to hold
    `needed` batches (a window that crosses an epoch measures the loader's restart too)."""
    if samples < needed:
        raise ConfigError(f"{flag} {samples}: too few for one epoch to hold the warm-up and the measured steps "
                          f"({needed} batches of at least 1); give at least {needed} or fewer --steps")
    return min(preferred, samples // needed)


def _datasets(n_images: int, n_docs: int):
    """Makes or reuses the default image folder, its shards and the corpus; prints a table."""
    from feedbench.datasets import ParquetShards, defaults

    rows = []
    started = time.perf_counter()
    with progress_bar("default images", n_images) as advance:
        images = defaults.default_images(n=n_images, progress=advance)
    rows.append(_row("image folder", images, started))
    started = time.perf_counter()
    with progress_bar("image shards", n_images) as advance:
        shards = defaults.default_image_shards(n=n_images, progress=advance)
    rows.append(_row("image shards", shards, started, rows_read=len(ParquetShards(shards.root))))
    started = time.perf_counter()
    with progress_bar("default corpus", n_docs) as advance:
        text = defaults.default_text(n=n_docs, progress=advance)
    rows.append(_row("text corpus", text, started, rows_read=len(ParquetShards(text.root / "shards"))))
    table = Table(title="feedbench default datasets")
    for column in ("dataset", "files", "MB", "KB/file", "rows read", "seconds", "state"):
        table.add_column(column, justify="left" if column in ("dataset", "state") else "right")
    for row in rows:
        table.add_row(*row)
    stdout_console().print(table)
    return images, text


def _row(name: str, dataset, started: float, rows_read: int | None = None) -> tuple[str, ...]:
    sizes = [f["size_bytes"] for f in dataset.files]
    return (
        name,
        str(len(sizes)),
        f"{sum(sizes) / 1e6:.1f}",
        f"{statistics.fmean(sizes) / 1e3:.1f}",
        "-" if rows_read is None else str(rows_read),
        f"{time.perf_counter() - started:.1f}",
        "reused" if dataset.reused else "generated",
    )
