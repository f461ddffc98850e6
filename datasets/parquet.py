"""Parquet shards of images (encoded bytes + label) and text (text + label), and their reader.

Shards are files ``part-00000.parquet``, ... of at most `rows_per_shard` rows, written in
row groups of `rows_per_group` rows: the unit a streaming reader fetches, decodes and hands
to a worker. :class:`ParquetShards` indexes the row groups of a folder of shards so that
both frameworks' pipelines can split them across workers, stream them, or read one row.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from feedbench.datasets import _store
from feedbench.datasets.folders import scan_image_folder
from feedbench.pipelines.core.errors import ConfigError, DatasetError

IMAGE_SCHEMA = pa.schema([("image", pa.binary()), ("label", pa.int64()), ("path", pa.string())])
TEXT_SCHEMA = pa.schema([("text", pa.string()), ("label", pa.int64()), ("id", pa.int64())])
KIND = "image-shards"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_shards(
    rows: Iterable[dict[str, Any]],
    folder: Path,
    schema: pa.Schema,
    *,
    rows_per_group: int,
    rows_per_shard: int,
) -> list[dict[str, Any]]:
    """Writes `rows` into Parquet shards in `folder`; returns their manifest entries.

    Args:
        rows: Records with the fields of `schema`.
        folder: An existing folder (being built).
        schema: IMAGE_SCHEMA or TEXT_SCHEMA.
        rows_per_group: Rows per row group.
        rows_per_shard: Rows per file, a multiple of `rows_per_group` is best.
    """
    if rows_per_group <= 0 or rows_per_shard <= 0:
        raise ConfigError(f"rows_per_group and rows_per_shard must be positive, got {rows_per_group}, {rows_per_shard}")
    entries: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    writer: pq.ParquetWriter | None = None
    in_shard = 0

    def flush() -> None:
        nonlocal writer, in_shard
        if not pending:
            return
        if writer is None:
            writer = pq.ParquetWriter(folder / shard_name(len(entries)), schema)
        writer.write_table(pa.Table.from_pylist(pending, schema=schema), row_group_size=rows_per_group)
        in_shard += len(pending)
        pending.clear()
        if in_shard >= rows_per_shard:
            close()

    def close() -> None:
        nonlocal writer, in_shard
        if writer is None:
            return
        writer.close()
        entries.append(_store.file_entry(folder, folder / shard_name(len(entries)), rows=in_shard))
        writer, in_shard = None, 0

    for row in rows:
        pending.append(row)
        if len(pending) == rows_per_group or in_shard + len(pending) == rows_per_shard:
            flush()
    flush()
    close()
    return entries


def _listing_digest(samples: Sequence[tuple[Path, int]]) -> str:
    """A digest of names, sizes and modification times: changes when the folder does."""
    digest = hashlib.sha256()
    for path, label in samples:
        try:
            stat = path.stat()
        except OSError as exc:  # the packing names it the same way
            raise DatasetError(f"{path}: unreadable ({exc.strerror or exc})") from None
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def make_image_shards(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rows_per_group: int = 64,
    rows_per_shard: int = 1024,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> _store.Dataset:
    """Packs an ImageFolder (generated or the user's own) into Parquet shards.

    Each row holds an image's encoded bytes as they are on disk, its label (the index of
    its class folder in sorted order, as torchvision's ImageFolder numbers them) and its
    path relative to `source`. The source folder is only read. Atomic and idempotent like
    the generators: the same source, unchanged, and arguments reuse the shards at `out`.

    Args:
        source: The ImageFolder root (``source/<class>/<image>``).
        out: Folder to create for the shards and their manifest.
        rows_per_group: Images per row group (64 images of ~110 KB: ~7 MB a read).
        rows_per_shard: Images per file.
        overwrite: Replace feedbench shards of other arguments at `out`.
        progress: Called with a count of images as they are packed.
    """
    source, out = Path(source).resolve(), Path(out)
    target = out.resolve()
    if target == source or source.is_relative_to(target) or target.is_relative_to(source):
        raise ConfigError(f"out {out} overlaps the source folder {source}: choose a folder outside it")
    classes, samples = scan_image_folder(source)
    params = {
        "source": str(source),
        "source_digest": _listing_digest(samples),
        "rows_per_group": rows_per_group,
        "rows_per_shard": rows_per_shard,
    }
    reuse = _store.existing(out, KIND, params, overwrite=overwrite)
    if reuse is not None:
        return reuse

    def rows() -> Iterator[dict[str, Any]]:
        for path, label in samples:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DatasetError(f"{path}: unreadable ({exc.strerror})") from exc
            if progress:
                progress(1)
            yield {"image": data, "label": label, "path": path.relative_to(source).as_posix()}

    with _store.building(out) as tmp:
        entries = write_shards(rows(), tmp, IMAGE_SCHEMA, rows_per_group=rows_per_group, rows_per_shard=rows_per_shard)
        manifest = _store.write_manifest(tmp, KIND, params, entries, classes=classes, rows=len(samples))
    return _store.finished(out, manifest)


@dataclass(frozen=True)
class RowGroup:
    """One row group of one shard, and where its rows start in the whole dataset."""

    shard: Path
    index: int
    start: int
    rows: int


class ParquetShards:
    """Reads a folder of Parquet shards (or one file) row group by row group.

    Holds only paths and metadata, so it pickles into spawned DataLoader workers and
    tf.data generators; each process opens the files it reads.

    Args:
        path: A folder of ``*.parquet`` shards, or one Parquet file.
        columns: Columns to read; None for all.

    Raises:
        DatasetError: No shard there, or a shard that is not Parquet.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            shards = sorted(path.glob("*.parquet"))
        elif path.is_file():
            shards = [path]
        else:
            raise DatasetError(f"{path}: no such Parquet file or folder")
        if not shards:
            raise DatasetError(f"{path}: no *.parquet shards in this folder")
        self.path = path
        self.columns = list(columns) if columns is not None else None
        groups: list[RowGroup] = []
        start = 0
        schema = None
        for shard in shards:
            meta = _metadata(shard)
            schema = schema or meta.schema.to_arrow_schema()
            for index in range(meta.num_row_groups):
                rows = meta.row_group(index).num_rows
                groups.append(RowGroup(shard, index, start, rows))
                start += rows
        self.schema: pa.Schema = schema
        self.groups: tuple[RowGroup, ...] = tuple(groups)
        self._cache: tuple[int, pa.Table] | None = None

    def __len__(self) -> int:
        return self.groups[-1].start + self.groups[-1].rows if self.groups else 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}

    def read_group(self, k: int) -> pa.Table:
        """Row group `k` (in dataset order) as a table."""
        group = self.groups[k]
        try:
            return pq.ParquetFile(group.shard).read_row_group(group.index, columns=self.columns)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetError(f"{group.shard}: cannot read row group {group.index} ({exc})") from exc

    def iter_groups(self, groups: Iterable[int] | None = None) -> Iterator[pa.Table]:
        """Yields the given row groups (all, in order, by default) as tables."""
        for k in range(len(self.groups)) if groups is None else groups:
            yield self.read_group(k)

    def iter_rows(self, groups: Iterable[int] | None = None) -> Iterator[dict[str, Any]]:
        """Yields the rows of the given row groups as dicts."""
        for table in self.iter_groups(groups):
            yield from table.to_pylist()

    def locate(self, i: int) -> tuple[int, int]:
        """(row group, offset within it) of row `i`."""
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows in {self.path}")
        lo, hi = 0, len(self.groups) - 1
        while lo < hi:  # the last group whose start is <= i
            mid = (lo + hi + 1) // 2
            if self.groups[mid].start <= i:
                lo = mid
            else:
                hi = mid - 1
        return lo, i - self.groups[lo].start

    def row(self, i: int) -> dict[str, Any]:
        """Row `i` as a dict; reading rows in order reads each row group once."""
        k, offset = self.locate(i)
        if self._cache is None or self._cache[0] != k:
            self._cache = (k, self.read_group(k))
        return self._cache[1].slice(offset, 1).to_pylist()[0]

    def column(self, name: str) -> pa.ChunkedArray:
        """One column of every row (reads only that column)."""
        shards = sorted({g.shard for g in self.groups})
        try:
            return pa.chunked_array([pq.read_table(s, columns=[name]).column(name) for s in shards])
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise DatasetError(f"{self.path}: cannot read column {name!r} ({exc})") from exc

    def split(self, part: int, parts: int) -> list[int]:
        """The row groups of worker `part` of `parts`: every parts-th, round robin."""
        if not 0 <= part < parts:
            raise ConfigError(f"part must be within 0..{parts - 1}, got {part}")
        return list(range(part, len(self.groups), parts))


def _metadata(shard: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(shard)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{shard}: not a readable Parquet file ({exc})") from exc
