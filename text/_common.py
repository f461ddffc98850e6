"""What both text pipelines share without a framework: one tokenizing pass over the corpus
when a pipeline is built, the vocabulary, truncation counts and the length buckets.

The pass tokenizes every document once in the main process. It yields the vocabulary (when
none is given), each document's token count (the torch pipeline's bucketing sampler needs
it before any worker runs) and the number of documents longer than ``max_len`` (reported
as ``truncated``, each document once). Its result is cached on disk, keyed by the corpus's
content and the tokenizer (with its package's version), so that the runs of a grid do not
pay it again.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.metadata
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feedbench.pipelines.core import sharding
from feedbench.pipelines.core.errors import DatasetError
from feedbench.pipelines.core.files import cache_dir, write_text_atomically
from feedbench.pipelines.core.stats import LoaderStats, batches_ahead
from feedbench.text import _records
from feedbench.text._config import TextConfig
from feedbench.text._records import Corpus
from feedbench.text.tokenizers import tokenizer
from feedbench.text.vocab import Vocab, resolve_vocab

log = logging.getLogger(__name__)
_PASS_VERSION = "1"  # bump when a tokenizer's output changes, so that cached passes are not reused
_SMALLEST_BUCKET = 16
# The stages inside one document, in order; a prefix pipeline (``build_*_prefix``) stops after
# one of them and gives one number a document, so that `feedbench explain` can cost each stage
# as the difference between consecutive prefixes (docs/explain.md). "read" takes the checked
# text from memory (the records are read and checked once, when the loader is built).
# Batching (padding, bucketing), delivery, the copy and the step follow them.
SAMPLE_STAGES = ("read", "tokenize", "encode")


@dataclass(frozen=True)
class Prepared:
    """A checked corpus (the pipeline's shard of it) with what the pipelines need to batch it.

    Attributes:
        corpus: The valid documents of the shard and their labels (all of them for one shard).
        vocab: The vocabulary (given, loaded, or built from the whole source).
        lengths: Tokens of each document before truncation.
        truncated: Documents longer than ``max_len`` (each counted once).
        boundaries: Length bucket boundaries (see :func:`bucket_boundaries`).
        num_classes: The largest label of the whole source plus one: what a classifier of
            it must predict (the same in every shard).
    """

    corpus: Corpus
    vocab: Vocab
    lengths: np.ndarray
    truncated: int
    boundaries: tuple[int, ...]
    num_classes: int

    @property
    def skipped(self) -> int:
        return self.corpus.skipped

    def stats(self, cfg: TextConfig) -> LoaderStats:
        """What a loader of this corpus under `cfg` reports to the consumer loop."""
        return LoaderStats(skipped=self.skipped, truncated=self.truncated, vocab_size=len(self.vocab),
                           num_classes=self.num_classes, batches_ahead=batches_ahead(cfg.workers, cfg.prefetch))


def bucket_boundaries(max_len: int) -> tuple[int, ...]:
    """Powers of two from 16 below `max_len`: a document of ``n`` tokens (after truncation)
    falls in bucket ``bisect_right(boundaries, n)``, as in ``tf.data``'s
    ``bucket_by_sequence_length`` (bucket i holds lengths in ``[b[i-1], b[i])``)."""
    out, edge = [], _SMALLEST_BUCKET
    while edge < max_len:
        out.append(edge)
        edge *= 2
    return tuple(out)


def bucket_of(length: int, boundaries: tuple[int, ...]) -> int:
    return bisect.bisect_right(boundaries, length)


# The package whose version a tokenizer's output depends on ("regex" is ours: _PASS_VERSION).
_TOKENIZER_PACKAGES = {"spacy": "spacy", "nltk": "nltk"}


def _tokenizer_version(name: str) -> str:
    """The installed version of the package behind tokenizer `name` ("" when none or absent)."""
    package = _TOKENIZER_PACKAGES.get(name)
    if package is None:
        return ""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _key(corpus: Corpus, cfg: TextConfig) -> str:
    digest = hashlib.sha256()
    head = [_PASS_VERSION, cfg.tokenizer, _tokenizer_version(cfg.tokenizer), cfg.lowercase, len(corpus)]
    digest.update(json.dumps(head).encode())
    for text in corpus.texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _count(corpus: Corpus, cfg: TextConfig) -> tuple[np.ndarray, Counter[str]]:
    """Each document's token count and the corpus's token counts: from the cache or one pass."""
    folder = cache_dir() / "text-pass"
    path = folder / f"{_key(corpus, cfg)}.json"
    cached = _cached(path, len(corpus))
    if cached is not None:
        return cached
    split = tokenizer(cfg.tokenizer, lowercase=cfg.lowercase)
    counts: Counter[str] = Counter()
    lengths = np.empty(len(corpus), dtype=np.int64)
    for i, text in enumerate(corpus.texts):
        tokens = split(text)
        lengths[i] = len(tokens)
        counts.update(tokens)
    _store(path, {"lengths": lengths.tolist(), "counts": dict(counts)})
    return lengths, counts


def _cached(path: Path, n: int) -> tuple[np.ndarray, Counter[str]] | None:
    """The pass stored at `path` for `n` documents, or None: not cached yet, or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        lengths, counts = np.asarray(data["lengths"], dtype=np.int64), data["counts"]
        whole = lengths.shape == (n,) and isinstance(counts, dict) and sum(counts.values()) == lengths.sum()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (lengths, Counter(counts)) if whole else None


def _store(path: Any, data: dict[str, Any]) -> None:
    """Writes the cache entry whole or not at all; a cache that cannot be written is only slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(data, ensure_ascii=False))
    except OSError as exc:
        log.info("could not cache the tokenizing pass at %s (%s)", path, exc)


def prepare(corpus: Corpus, cfg: TextConfig) -> Prepared:
    """The vocabulary, token counts and buckets of a checked corpus under `cfg`, for the
    documents of `cfg`'s shard (see TextConfig): the vocabulary, the tokenizing pass (and
    its cache) and the number of classes are the whole corpus's, the same in every shard.

    Raises:
        ConfigError: More shards than records.
        DatasetError: No usable document in the shard (all its records bad, "skip").
    """
    lengths, counts = _count(corpus, cfg)
    if cfg.vocab is None:
        vocab = Vocab.from_counts(counts, tokenizer_name=cfg.tokenizer, lowercase=cfg.lowercase,
                                  min_freq=cfg.min_freq, max_size=cfg.max_size)
    else:
        vocab = resolve_vocab(cfg.vocab, cfg.tokenizer, cfg.lowercase)
    num_classes = max(corpus.labels, default=-1) + 1
    corpus, lengths = _shard(corpus, lengths, cfg)
    truncated = int((lengths > cfg.max_len).sum())
    return Prepared(corpus, vocab, lengths, truncated, bucket_boundaries(cfg.max_len), num_classes)


def _shard(corpus: Corpus, lengths: np.ndarray, cfg: TextConfig) -> tuple[Corpus, np.ndarray]:
    """The documents of `cfg`'s shard and their token counts: those whose position among
    the source's records (bad ones included) is ``shard_index`` modulo ``num_shards``, in
    source order; the shard's bad records and their problems (``on_error="skip"``) with them."""
    if cfg.num_shards == 1:
        return corpus, lengths
    records = len(corpus) + corpus.skipped  # every record is a document or a problem
    sharding.positions(records, cfg.num_shards, cfg.shard_index, corpus.origin)
    positions = np.arange(len(corpus)) if corpus.positions is None else np.asarray(corpus.positions, np.int64)
    keep = np.flatnonzero(positions % cfg.num_shards == cfg.shard_index)
    bad = np.ones(records, dtype=bool)
    bad[positions] = False
    problems = [problem for problem, position in zip(corpus.problems, np.flatnonzero(bad))
                if position % cfg.num_shards == cfg.shard_index]
    if not len(keep):
        raise DatasetError(f"{corpus.origin}: no usable document{sharding.part(cfg.num_shards, cfg.shard_index)} "
                           f"({len(problems)} bad record(s); the first: {problems[0]})")
    shard = Corpus(tuple(corpus.texts[i] for i in keep), tuple(corpus.labels[i] for i in keep), corpus.origin,
                   len(problems), tuple(problems), tuple(int(p) for p in positions[keep]))
    return shard, lengths[keep]


def prepare_source(source: Any, cfg: TextConfig) -> Prepared:
    """:func:`prepare` of a source path (JSONL, a corpus folder, Parquet)."""
    return prepare(_records.load(source, cfg.on_error), cfg)


def build_vocab(source: Any, *, tokenizer: str = "spacy", lowercase: bool = True, min_freq: int = 1,
                max_size: int | None = None, on_error: str = "raise") -> Vocab:
    """The vocabulary that both text pipelines build from `source` when given none, with these
    settings (the pipelines' keywords of the same names): read, checked and counted once, and
    cached like theirs. Pass it as ``vocab=`` to keep it, or use it to read their ids back.

    Raises:
        ConfigError, DatasetError, MissingDependencyError: As ``torch_loader`` does for these.
    """
    cfg = TextConfig(tokenizer=tokenizer, lowercase=lowercase, min_freq=min_freq, max_size=max_size, on_error=on_error,
                     workers=0)
    return prepare_source(source, cfg).vocab
