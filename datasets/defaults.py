"""The small default datasets that `feedbench demo` and the benchmarks use, kept in the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from feedbench.datasets._store import Dataset
from feedbench.datasets.corpus import make_text_corpus
from feedbench.datasets.images import make_image_folder
from feedbench.datasets.parquet import make_image_shards
from feedbench.pipelines.core.files import cache_dir

IMAGES = 512
DOCUMENTS = 2000


def data_dir() -> Path:
    """Where the default datasets live: ``<feedbench cache>/data``."""
    return cache_dir() / "data"


def default_images(*, n: int = IMAGES, progress: Callable[[int], None] | None = None) -> Dataset:
    """The default image folder (10 classes, seed 0), generated on first use."""
    return make_image_folder(data_dir() / f"images-{n}", n, 10, 0, progress=progress)


def default_image_shards(*, n: int = IMAGES, progress: Callable[[int], None] | None = None) -> Dataset:
    """The default image folder as Parquet shards, packed on first use."""
    folder = default_images(n=n)
    return make_image_shards(folder.root, data_dir() / f"images-{n}.parquet", progress=progress)


def default_text(*, n: int = DOCUMENTS, progress: Callable[[int], None] | None = None) -> Dataset:
    """The default text corpus (2 classes, seed 0), generated on first use."""
    return make_text_corpus(data_dir() / f"text-{n}", n, 2, 0, progress=progress)
