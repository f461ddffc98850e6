"""The text pipeline in PyTorch: a DataLoader that tokenizes in its workers.

Stages, in the order tf_pipeline.py has them: documents (checked up front, see
:mod:`feedbench.text._records`) -> shuffle (per epoch, seeded) -> tokenize + encode +
truncate (in `workers` processes) -> batch, by length bucket or in order (the batch
sampler) -> pad to the batch's longest (collate) -> prefetch (`prefetch` batches per
worker) -> pinned memory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.dataloader import DeviceAwareLoader, dataloader_options
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.text import tokenizers
from feedbench.text._common import SAMPLE_STAGES, Prepared, bucket_of, prepare_source
from feedbench.text._config import TextConfig
from feedbench.text.vocab import PAD_ID, Vocab

log = logging.getLogger(__name__)
# What a worker needs, imported once by the fork server the workers start from (and the tokenizer's package).
WORKER_MODULES = ("torch", "numpy", __name__)



class _Documents(torch.utils.data.Dataset):
    """Map-style dataset of the checked documents of the shard: index -> (token ids, label).
    The shard is the subset of the source's indices that _common.prepare took (records
    ``shard_index``, ``shard_index + num_shards``, ...), so that each worker holds only it.

    Tokenizing happens here, in the worker: text -> tokens (the named tokenizer, lowercased
    if asked) -> ids (the vocabulary) -> the first `max_len` of them. A sample is one compact
    int64 array and an int, so that few objects cross from a worker (DESIGN.md, "Measurement
    pitfalls").
    """

    def __init__(self, prepared: Prepared, cfg: TextConfig, through: str | None = None) -> None:
        self.through = through
        self.texts, self.labels = prepared.corpus.texts, prepared.corpus.labels
        self.vocab, self.max_len = prepared.vocab, cfg.max_len
        self.split: Callable[[str], list[str]] = tokenizers.tokenizer(cfg.tokenizer, lowercase=cfg.lowercase)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        text = self.texts[index]
        if self.through == "read":  # a prefix pipeline (build_torch_prefix): one number a document
            return np.asarray([len(text)], dtype=np.int64), self.labels[index]
        tokens = self.split(text)
        if self.through == "tokenize":
            return np.asarray([len(tokens)], dtype=np.int64), self.labels[index]
        ids = self.vocab.encode(tokens[: self.max_len])
        if self.through == "encode":
            return np.asarray([len(ids)], dtype=np.int64), self.labels[index]
        return np.asarray(ids, dtype=np.int64), self.labels[index]


class _EpochOrder(torch.utils.data.Sampler):
    """Yields document indices; each pass over it is the next epoch.

    With `shuffle`, the order is a permutation drawn from (seed, epoch): reproducible for a
    seed whatever the number of workers (the order is made in the main process).
    """

    def __init__(self, n: int, cfg: TextConfig) -> None:
        self.n, self.shuffle, self.seed = n, cfg.shuffle, cfg.seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else range(self.n)
        for index in order:
            yield int(index)


class _BucketBatches(torch.utils.data.Sampler):
    """Batches of documents of one length bucket, as tf.data's ``bucket_by_sequence_length``.

    Walks the epoch's order and puts each document into its bucket (by its token count
    after truncation); a bucket that holds `batch_size` documents is emitted as a batch and
    emptied. At the epoch's end the partial buckets are emitted in bucket order, unless
    `drop_last`.
    """

    def __init__(self, order: _EpochOrder, buckets: np.ndarray, batch_size: int, drop_last: bool) -> None:
        self.order, self.buckets = order, buckets
        self.batch_size, self.drop_last = batch_size, drop_last

    def __len__(self) -> int:
        sizes = np.bincount(self.buckets)
        if self.drop_last:
            return int((sizes // self.batch_size).sum())
        return int(((sizes + self.batch_size - 1) // self.batch_size).sum())

    def __iter__(self) -> Iterator[list[int]]:
        open_batches: dict[int, list[int]] = {}
        for index in self.order:
            batch = open_batches.setdefault(int(self.buckets[index]), [])
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                open_batches[int(self.buckets[index])] = []
        if not self.drop_last:
            for bucket in sorted(open_batches):
                if open_batches[bucket]:
                    yield open_batches[bucket]


def collate(samples: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(token_ids [B, T] padded with PAD_ID to the longest, lengths [B], labels [B]), int64."""
    lengths = np.fromiter((len(ids) for ids, _ in samples), dtype=np.int64, count=len(samples))
    token_ids = np.full((len(samples), int(lengths.max(initial=0))), PAD_ID, dtype=np.int64)
    for row, (ids, _) in enumerate(samples):
        token_ids[row, : len(ids)] = ids
    labels = np.fromiter((label for _, label in samples), dtype=np.int64, count=len(samples))
    return torch.from_numpy(token_ids), torch.from_numpy(lengths), torch.from_numpy(labels)


class TextFacts:
    """What both torch text loaders (DataLoader, threads) report: the records dropped by
    ``on_error="skip"`` (``skipped``), the documents longer than ``max_len``, each once
    (``truncated``), the vocabulary's size and the number of classes (the textcls workload
    sizes itself by them) and the batches made ahead (:meth:`loader_stats`).

    Attributes:
        config: The pipeline's settings.
        vocab: The vocabulary it encodes with.
        num_classes: The largest label of the corpus plus one.
    """

    config: TextConfig
    thread_roles: Callable[[], tuple[tuple[str, int], ...]]  # the loader's own

    def _facts(self, cfg: TextConfig, prepared: Prepared) -> None:
        self.config = cfg
        self.vocab: Vocab = prepared.vocab
        self.num_classes: int = prepared.num_classes
        self._stats = prepared.stats(cfg)

    @property
    def skipped(self) -> int:
        return self._stats.skipped

    @property
    def truncated(self) -> int:
        return self._stats.truncated

    def loader_stats(self) -> LoaderStats:
        return dataclasses.replace(self._stats, threads=self.thread_roles())


class TextLoader(TextFacts, DeviceAwareLoader, torch.utils.data.DataLoader):
    """A DataLoader of (token_ids int64 [B, T], lengths int64 [B], labels int64 [B]).

    Bad records were dealt with when it was built; what it reports: :class:`TextFacts`.
    """

    def __init__(self, dataset: _Documents, cfg: TextConfig, prepared: Prepared, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self._facts(cfg, prepared)


def text_dataset(source: str | os.PathLike[str], cfg: TextConfig, through: str | None,
                 ) -> tuple[_Documents, torch.utils.data.Sampler, Prepared]:
    """The dataset, batch sampler and prepared source of the torch text loaders (`through`: a
    prefix's last stage)."""
    if through is not None:
        checks.choice("through", through, SAMPLE_STAGES)
    prepared = prepare_source(source, cfg)
    return _Documents(prepared, cfg, through), _batch_sampler(prepared, cfg), prepared


def _batch_sampler(prepared: Prepared, cfg: TextConfig) -> torch.utils.data.Sampler:
    order = _EpochOrder(len(prepared.corpus), cfg)
    if not cfg.bucket:
        return torch.utils.data.BatchSampler(order, cfg.batch_size, cfg.drop_last)
    kept = np.minimum(prepared.lengths, cfg.max_len)
    buckets = np.fromiter((bucket_of(int(n), prepared.boundaries) for n in kept), dtype=np.int64, count=len(kept))
    return _BucketBatches(order, buckets, cfg.batch_size, cfg.drop_last)


def build_torch_loader(source: str | os.PathLike[str], cfg: TextConfig) -> TextLoader:
    """The DataLoader for `source` under `cfg` (see :func:`torch_loader`)."""
    return _loader(source, cfg, None)


def build_torch_prefix(source: str | os.PathLike[str], cfg: TextConfig, through: str) -> TextLoader:
    """The pipeline of :func:`build_torch_loader` stopped after the document stage `through`
    ("read", "tokenize" or "encode": _common.SAMPLE_STAGES): each document becomes one number
    (its characters, tokens or ids), batched as the loader batches, so that ``feedbench
    explain`` can cost a stage as the difference between two prefixes."""
    return _loader(source, cfg, through)


def _loader(source: str | os.PathLike[str], cfg: TextConfig, through: str | None) -> TextLoader:
    dataset, sampler, prepared = text_dataset(source, cfg, through)
    return TextLoader(dataset, cfg, prepared, batch_sampler=sampler, collate_fn=collate,
                      **dataloader_options(cfg.workers, cfg.prefetch,
                                           preload=(*WORKER_MODULES, *tokenizers.modules(cfg.tokenizer))))


def torch_loader(
    source: str | os.PathLike[str],
    *,
    tokenizer: str = "spacy",
    vocab: Vocab | str | os.PathLike[str] | None = None,
    max_len: int = 512,
    lowercase: bool = True,
    batch_size: int = 64,
    workers: int | str | None = None,
    shuffle: bool = True,
    bucket: bool = True,
    seed: int = 0,
    prefetch: int | str = 2,
    drop_last: bool = False,
    on_error: str = "raise",
    min_freq: int = 1,
    max_size: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
) -> TextLoader:
    """A text classification DataLoader: the torch half of a mirrored pair.

    Each document is tokenized (in the workers), encoded with the vocabulary (unknown tokens
    become ``UNK_ID`` = 1) and truncated to `max_len` tokens; batches are ``(token_ids int64
    [B, T] padded with 0, lengths int64 [B], labels int64 [B])``, T being the longest
    document of the batch. With `bucket`, batches hold documents of one length bucket
    (bucket boundaries 16, 32, 64, ... below `max_len`), with the semantics of tf.data's
    ``bucket_by_sequence_length``: a bucket's batch leaves when it is full, the partial
    ones at the epoch's end, in bucket order. Every record is read and checked when the
    loader is built; so is the vocabulary, built from `source` when none is given.

    The keywords mean what they mean for :func:`feedbench.text.tf_dataset`; differences
    that cannot be avoided: `workers` are processes here (threads in tf.data), `prefetch`
    counts batches per worker (DataLoader ``prefetch_factor``), "autotune" for `workers`
    means one per core and for `prefetch` means 2 (torch has no autotuning); the order
    drawn for a seed differs from tf's (other random streams), so batches hold other
    documents, though each epoch holds every document once on both.

    Args:
        source: A corpus folder (``corpus.jsonl``), a ``.jsonl`` file of ``{"text", "label"}``
            records, a ``.parquet`` file or a folder of them (columns text and label).
        tokenizer: "spacy", "nltk" or "regex" (see :mod:`feedbench.text.tokenizers`).
        vocab: A Vocab, the path of one saved with ``Vocab.save``, or None to build one
            from `source`.
        max_len: Most tokens kept per document; longer ones are truncated and counted
            (``truncated``).
        lowercase: Lowercase each document before tokenizing.
        batch_size: Documents per batch.
        workers: DataLoader worker processes; None: one per core less one; "autotune":
            one per core; 0: none, the main process tokenizes each batch when it is asked
            for, between steps (synchronously; tf.data's map with 0 still prefetches).
        shuffle: Reshuffle every epoch (seeded).
        bucket: Batch documents of similar length together (less padding).
        seed: Seed of the shuffle: the same seed gives the same batches.
        prefetch: Batches each worker makes ahead (DataLoader ``prefetch_factor``); 0 is
            taken as 1 per worker (a DataLoader cannot prefetch less), unlike tf.data's 0
            (none); with ``workers=0`` nothing is made ahead whatever its value.
        drop_last: Drop a last short batch (of each bucket, when bucketing).
        on_error: "raise" or "skip" (dropped and counted in ``skipped``) for bad records.
        min_freq: When building the vocabulary: fewest occurrences a token needs.
        max_size: When building the vocabulary: most ids, the two special ones included.
        num_shards: Shards the source's records are dealt into; 1: the whole source.
        shard_index: The shard read, 0 to num_shards - 1: the records i of the source's
            listing order (JSONL records, Parquet rows in file and row order) with
            ``i % num_shards == shard_index``, the same every epoch; the shuffle (and the
            bucketing) works within the shard, and an epoch is one pass over it.
            ``tf.data.Dataset.shard`` semantics (before the shuffle) on both sides, so that
            :func:`feedbench.text.tf_dataset`'s shard k holds the same documents: a subset
            of the documents' indices, not a ``DistributedSampler`` (which re-deals every
            epoch and pads). The vocabulary and the number of classes are the whole
            source's, the same in every shard; every record is still checked ("raise"
            fails every shard on a bad record; "skip" counts each shard's own).

    Raises:
        ConfigError: A keyword out of range, a vocabulary built with another tokenizer
            or lowercasing, or more shards than records.
        DatasetError: The source is missing or holds no usable document; a bad record
            ("raise", naming its file and line or row); an unreadable vocabulary file.
        MissingDependencyError: The tokenizer's package (spaCy, NLTK) is not installed.
    """
    cfg = TextConfig(
        tokenizer=tokenizer, vocab=vocab, max_len=max_len, lowercase=lowercase, batch_size=batch_size,
        workers=workers, shuffle=shuffle, bucket=bucket, seed=seed, prefetch=prefetch, drop_last=drop_last,
        on_error=on_error, min_freq=min_freq, max_size=max_size, num_shards=num_shards, shard_index=shard_index,
    )
    return build_torch_loader(source, cfg)
