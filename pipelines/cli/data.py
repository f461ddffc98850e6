"""`feedbench data ...`: make the datasets every pipeline reads."""

from __future__ import annotations

import argparse
import time

from feedbench.pipelines.cli.progress import progress_bar
from feedbench.pipelines.core.errors import ConfigError


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 500x375, got {text!r}") from None
    return width, height


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `data image`, `data text` and `data shards` to the CLI."""
    data = commands.add_parser("data", help="generate datasets or pack folders into Parquet shards")
    kinds = data.add_subparsers(dest="kind", required=True, metavar="{image,text,shards}")

    image = kinds.add_parser("image", help="photo-like JPEGs in the ImageFolder layout ROOT/<class>/<id>.jpg")
    image.add_argument("root", metavar="ROOT", help="folder to create (new, empty, or a feedbench dataset)")
    image.add_argument("--n", type=int, required=True, help="number of images")
    image.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    image.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    image.add_argument("--size", type=_size, default=(500, 375), help="typical WIDTHxHEIGHT (default 500x375)")
    image.add_argument("--shards", metavar="DIR", help="also pack the images into Parquet shards in DIR")
    _common(image)
    image.set_defaults(run=_run_image)

    text = kinds.add_parser("text", help="labelled documents as ROOT/corpus.jsonl and ROOT/shards/*.parquet")
    text.add_argument("root", metavar="ROOT", help="folder to create (new, empty, or a feedbench dataset)")
    text.add_argument("--n", type=int, required=True, help="number of documents")
    text.add_argument("--classes", type=int, default=2, help="number of labels (default 2)")
    text.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _common(text)
    text.set_defaults(run=_run_text)

    shards = kinds.add_parser("shards", help="pack an ImageFolder (yours or generated) into Parquet shards")
    shards.add_argument("source", metavar="SRC", help="ImageFolder root, SRC/<class>/<image>")
    shards.add_argument("out", metavar="OUT", help="folder to create for the shards")
    shards.add_argument("--rows-per-group", type=int, default=64, help="images per row group (default 64)")
    shards.add_argument("--overwrite", action="store_true", help="replace feedbench shards made with other arguments")
    shards.set_defaults(run=_run_shards)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="processes to generate with (default: all cores)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a feedbench dataset made with other arguments (never other files)",
    )


def _report(what: str, dataset, count: int, started: float) -> str:
    seconds = time.perf_counter() - started
    megabytes = dataset.size_bytes / 1e6
    if dataset.reused:
        return f"reused {count} {what} ({megabytes:.1f} MB) at {dataset.root}: its manifest verifies"
    return f"wrote {count} {what} ({megabytes:.1f} MB) to {dataset.root} in {seconds:.1f} s ({count / seconds:.0f}/s)"


def _run_image(args: argparse.Namespace) -> list[str]:
    from feedbench.datasets import make_image_folder, make_image_shards

    if args.n <= 0:
        raise ConfigError(f"--n must be a positive number of images, got {args.n}")
    started = time.perf_counter()
    with progress_bar("images", args.n) as advance:
        dataset = make_image_folder(
            args.root, args.n, args.classes, args.seed, args.size,
            workers=args.workers, overwrite=args.overwrite, progress=advance,
        )
    lines = [_report("images", dataset, args.n, started)]
    if args.shards:
        started = time.perf_counter()
        with progress_bar("shards", args.n) as advance:
            shards = make_image_shards(args.root, args.shards, overwrite=args.overwrite, progress=advance)
        lines.append(_report("images as Parquet shards", shards, args.n, started))
    return lines


def _run_text(args: argparse.Namespace) -> list[str]:
    from feedbench.datasets import make_text_corpus

    if args.n <= 0:
        raise ConfigError(f"--n must be a positive number of documents, got {args.n}")
    started = time.perf_counter()
    with progress_bar("documents", args.n) as advance:
        dataset = make_text_corpus(
            args.root, args.n, args.classes, args.seed, workers=args.workers, overwrite=args.overwrite, progress=advance
        )
    return [_report("documents", dataset, args.n, started)]


def _run_shards(args: argparse.Namespace) -> list[str]:
    from pathlib import Path

    from feedbench.datasets import make_image_shards, scan_image_folder

    _, samples = scan_image_folder(Path(args.source))
    started = time.perf_counter()
    with progress_bar("shards", len(samples)) as advance:
        shards = make_image_shards(
            args.source, args.out, rows_per_group=args.rows_per_group, overwrite=args.overwrite, progress=advance
        )
    return [_report("images as Parquet shards", shards, len(samples), started)]
