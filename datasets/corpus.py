"""A labelled text corpus: JSONL records ``{"text", "label"}`` and the same as Parquet shards."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from feedbench.datasets import _prose, _store
from feedbench.datasets._parallel import chunked, map_chunks
from feedbench.datasets.parquet import TEXT_SCHEMA, write_shards
from feedbench.pipelines.core.errors import ConfigError

KIND = "text-corpus"
GENERATOR = "prose/1"  # bump when the text for a seed changes, so old corpora are not reused
JSONL = "corpus.jsonl"
SHARDS = "shards"
_CHUNK = 256


@functools.lru_cache(maxsize=4)
def _lexicon(seed: int, size: int) -> _prose.Lexicon:
    return _prose.Lexicon.build(seed, size)


def _write_chunk(indices: range, params: dict) -> list[str]:
    """The documents `indices`, each from its own generator."""
    lexicon = _lexicon(params["seed"], params["vocabulary"])
    classes = params["classes"]
    return [_prose.document(np.random.default_rng([params["seed"], i]), lexicon, i % classes, classes) for i in indices]


def make_text_corpus(
    root: str | os.PathLike[str],
    n: int,
    classes: int = 2,
    seed: int = 0,
    *,
    vocabulary: int = 50_000,
    rows_per_group: int = 1024,
    rows_per_shard: int = 16384,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> _store.Dataset:
    """Writes `n` labelled English-like documents as JSONL and as Parquet shards.

    Word types follow a Zipf law over `vocabulary` types (real function words first, then
    English-like pseudo-words, some hyphenated, accented, capitalized or acronyms), with
    punctuation, contractions, numbers in several forms and mixed case; lengths are
    long-tailed (median about 200 words, a tail past 1,000), so that the tokenizer matters.
    Document i has label ``i % classes``; each class favours its own topic words, so a
    classifier can learn. Writes ``root/corpus.jsonl`` (records ``{"text", "label"}``),
    ``root/shards/part-*.parquet`` (columns text, label, id) and ``root/manifest.json``.

    Deterministic for `seed`, atomic and idempotent like :func:`make_image_folder`.

    Args:
        root: Folder to create; it must not exist, be empty, or hold a feedbench dataset.
        n: Number of documents.
        classes: Number of labels, at most `n`.
        seed: Seed of every word.
        vocabulary: Number of word types.
        rows_per_group: Documents per Parquet row group.
        rows_per_shard: Documents per Parquet file.
        workers: Processes to write with; None for every available core.
        overwrite: Replace a feedbench dataset of other arguments at `root`.
        progress: Called with a count of documents as they are written.

    Raises:
        ConfigError: An argument out of range.
        DatasetError: `root` cannot be used.
    """
    _store.check_counts(n, classes, "document")
    if vocabulary < 1000:
        raise ConfigError(f"vocabulary must be at least 1000 word types, got {vocabulary}")
    root = Path(root)
    params = {
        "generator": GENERATOR,
        "n": n,
        "classes": classes,
        "seed": seed,
        "vocabulary": vocabulary,
        "rows_per_group": rows_per_group,
        "rows_per_shard": rows_per_shard,
    }
    reuse = _store.reusable(root, KIND, params, overwrite=overwrite, progress=progress)
    if reuse is not None:
        return reuse
    with _store.building(root) as tmp:
        texts = map_chunks(_write_chunk, chunked(n, _CHUNK), (params,), workers=workers, progress=progress)
        (tmp / SHARDS).mkdir()
        with open(tmp / JSONL, "w", encoding="utf-8") as jsonl:
            rows = _records(texts, classes, jsonl)
            entries = write_shards(
                rows, tmp / SHARDS, TEXT_SCHEMA, rows_per_group=rows_per_group, rows_per_shard=rows_per_shard
            )
        shards = [{**entry, "path": f"{SHARDS}/{entry['path']}"} for entry in entries]
        files = [_store.file_entry(tmp, tmp / JSONL, rows=n), *shards]
        manifest = _store.write_manifest(tmp, KIND, params, files, classes=list(range(classes)), rows=n)
    return _store.finished(root, manifest)


def _records(chunks: Iterator[list[str]], classes: int, jsonl) -> Iterator[dict]:
    """Writes each document to `jsonl` as it passes on its way to the Parquet writer."""
    i = 0
    for chunk in chunks:
        for text in chunk:
            label = i % classes
            jsonl.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
            yield {"text": text, "label": label, "id": i}
            i += 1
