"""Reading a labelled corpus for both text pipelines, every record checked up front.

A source is a corpus folder made by :func:`feedbench.datasets.make_text_corpus` (its
``corpus.jsonl``), a ``.jsonl`` file of records ``{"text": str, "label": int}``, or Parquet
(a ``.parquet`` file or a folder of them, e.g. the corpus's ``shards/``; columns ``text`` and
``label``). Every record is read and checked when a pipeline is built, in the main process:
a bad one is an error that names its file and line (JSONL) or row (Parquet), or with
``on_error="skip"`` it is dropped and counted once. The valid documents are then held in
memory (a corpus of 100,000 documents of 200 words is about 130 MB of text); DataLoader
workers each get a copy when they start.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.errors import DatasetError

log = logging.getLogger(__name__)
JSONL, SHARDS = "corpus.jsonl", "shards"


@dataclass(frozen=True)
class Corpus:
    """The valid documents of a source, in source order.

    Attributes:
        texts: The documents.
        labels: Their labels (integers >= 0).
        origin: Where they came from, for messages.
        skipped: Records dropped as bad (``on_error="skip"``), each counted once.
        problems: Why, one line per dropped record (file and line or row first).
        positions: Each document's position among the source's records (bad ones
            included, blank JSONL lines not): what sharding deals by. None: the records
            0, 1, ... in order, none dropped.
    """

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    origin: str
    skipped: int = 0
    problems: tuple[str, ...] = ()
    positions: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def _record_problem(text: Any, label: Any) -> str | None:
    """Why a record is not a usable document, or None; `text` may be UTF-8 bytes."""
    if text is None:
        return 'no "text"'
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not UTF-8 (byte 0x{text[exc.start]:02x} at offset {exc.start})"
    if not isinstance(text, str):
        return f'"text" must be a string, got {type(text).__name__}'
    try:
        text.encode("utf-8")  # JSON's "\ud800" escapes give lone surrogates, which no tokenizer or file takes
    except UnicodeEncodeError as exc:
        return f"not valid Unicode (lone surrogate U+{ord(text[exc.start]):04X} at offset {exc.start})"
    if not text:
        return "empty document"
    if text.isspace():
        return "whitespace-only document"
    if label is None:
        return 'no "label"'
    if isinstance(label, bool) or not isinstance(label, int):
        return f'"label" must be an integer, got {label!r}'
    if label < 0:
        return f'"label" must be >= 0, got {label}'
    if label >= 2**63:
        return f'"label" must be < 2**63 (an int64), got {label}'
    return None


def _collect(items: Iterable[tuple[str, Any, Any, str | None]], origin: str, on_error: str) -> Corpus:
    texts: list[str] = []
    labels: list[int] = []
    problems: list[str] = []
    positions: list[int] = []
    for position, (where, text, label, problem) in enumerate(items):
        problem = problem or _record_problem(text, label)
        if problem is not None:
            if on_error == "raise":
                raise DatasetError(f"{where}: {problem} (on_error='skip' drops and counts such records)")
            problems.append(f"{where}: {problem}")
            continue
        texts.append(text.decode("utf-8") if isinstance(text, bytes) else text)
        labels.append(label)
        positions.append(position)
    if problems:
        log.warning("skipped %d bad record(s) of %s; the first: %s", len(problems), origin, problems[0])
    if not texts:
        first = f"; the first: {problems[0]}" if problems else ""
        raise DatasetError(f"{origin}: no usable document ({len(problems)} bad record(s){first})")
    return Corpus(tuple(texts), tuple(labels), origin, len(problems), tuple(problems), tuple(positions))


def from_records(records: Iterable[tuple[str, Any, Any]], origin: str, on_error: str) -> Corpus:
    """A Corpus from ``(where, text, label)`` triples (`text` may be UTF-8 bytes).

    Raises:
        DatasetError: A bad record with ``on_error="raise"`` (naming `where`), or no usable
            record at all.
    """
    return _collect(((where, text, label, None) for where, text, label in records), origin, on_error)


def _jsonl(path: Path) -> Iterator[tuple[str, Any, Any, str | None]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path} line {number}"
            if not raw.strip():
                continue  # a blank line holds no record (a trailing newline makes one)
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield where, None, None, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                continue
            except json.JSONDecodeError as exc:
                yield where, None, None, f"not JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(record, dict):
                yield where, None, None, f'a record is an object {{"text", "label"}}, got {type(record).__name__}'
                continue
            yield where, record.get("text"), record.get("label"), None


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.parquet"))
    if not files:
        raise DatasetError(f"{path}: no .parquet files in this folder")
    return files


def _parquet(files: list[Path]) -> Iterator[tuple[str, Any, Any, str | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in files:
        try:
            missing = [name for name in ("text", "label") if name not in pq.read_schema(path).names]
            table = None if missing else pq.read_table(path, columns=["text", "label"])
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            detail = (str(exc).splitlines() or [type(exc).__name__])[0]  # Arrow's messages run over lines
            raise DatasetError(f"{path}: not a Parquet file with columns text and label ({detail})") from exc
        if table is None:
            raise DatasetError(f"{path}: no column {' or '.join(missing)} (a text corpus has columns text and label)")
        label_type, text_type = table.schema.field("label").type, table.schema.field("text").type
        if not pa.types.is_integer(label_type):
            raise DatasetError(f"{path}: column label must hold integers, not {label_type}")
        if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)
                or pa.types.is_binary(text_type) or pa.types.is_large_binary(text_type)):
            raise DatasetError(f"{path}: column text must hold strings, not {text_type}")
        texts, labels = table.column("text").to_pylist(), table.column("label").to_pylist()
        for row, (text, label) in enumerate(zip(texts, labels)):
            yield f"{path} row {row}", text, label, None


def resolve(source: str | os.PathLike[str]) -> tuple[str, Path]:
    """("jsonl" | "parquet", path) of a source path; DatasetError when there is nothing to read."""
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet", path
        return "jsonl", path
    if (path / JSONL).is_file():
        return "jsonl", path / JSONL
    if (path / SHARDS).is_dir():
        return "parquet", path / SHARDS
    if any(path.glob("*.parquet")):
        return "parquet", path
    raise DatasetError(f"{path}: no {JSONL}, {SHARDS}/ or .parquet files in this folder")


def load(source: str | os.PathLike[str], on_error: str) -> Corpus:
    """The checked documents of a source path (see the module docstring)."""
    kind, path = resolve(source)
    items = _jsonl(path) if kind == "jsonl" else _parquet(_parquet_files(path))
    return _collect(items, str(path), on_error)
