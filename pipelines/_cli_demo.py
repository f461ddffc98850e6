"""`feedbench demo`: the main job on embedded defaults.

For now it makes (or reuses) the default datasets in the cache, reads them back through the
shard reader, prints what they hold, and checks the consumer loop against producers of known
cost (the ground truth every figure rests on); the framework comparison joins it when the
pipelines exist.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from feedbench.pipelines._progress import progress_bar


def add_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="make the default datasets and run what feedbench can measure so far")
    demo.add_argument("--images", type=int, default=None, help="images in the default image set (default 512)")
    demo.add_argument("--documents", type=int, default=None, help="documents in the default corpus (default 2000)")
    demo.add_argument("--steps", type=int, default=60, help="measured steps per consumer-loop check (default 60)")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> list[str]:
    from feedbench.datasets import ParquetShards, defaults

    n_images = args.images or defaults.IMAGES
    n_docs = args.documents or defaults.DOCUMENTS
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
    console = Console()
    console.print(table)
    console.print(_loop_check(args.steps))
    return [
        f"datasets in {defaults.data_dir()}",
        "The framework comparison (torch DataLoader vs tf.data through one consumer loop) is not part of "
        "this version yet; `feedbench data --help` makes datasets of your own size."
    ]


def _loop_check(steps: int) -> Table:
    """The consumer loop against producers of known cost: measured beside analytic figures."""
    from feedbench.pipelines.validate import CASES, run_case

    table = Table(title="consumer loop against ground truth (CPU)")
    for column in ("producer", "d/c ms", "batch/s (truth)", "starved (truth)", "AU (truth)", "ok"):
        table.add_column(column, justify="left" if column == "producer" else "right")
    chosen = [case for case in CASES if case.name in DEMO_CASES]
    with progress_bar("consumer-loop checks", len(chosen)) as advance:
        for case in chosen:
            check = run_case(case, device="cpu", steps=steps)
            r, t = check.result, check.truth
            table.add_row(
                case.name, f"{case.producer_s * 1e3:g}/{case.step_s * 1e3:g}",
                f"{r.batches_per_s:.1f} ({t.batches_per_s:.1f})", f"{r.starvation:.2f} ({t.starvation:.2f})",
                f"{r.accelerator_utilization:.2f} ({t.accelerator_utilization:.2f})", "yes" if check.passed else "NO",
            )
            advance(1)
    return table


DEMO_CASES = ("sync, producer-bound", "prefetch, consumer-bound", "2 CPU workers, producer-bound")  # one per regime


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
