"""The settings of a text pipeline; the same frozen object drives both frameworks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from feedbench.pipelines.core import checks, sharding
from feedbench.pipelines.core.checks import ON_ERROR
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.core.machine import default_workers
from feedbench.pipelines.core.remote import RayOptions, ServiceOptions
from feedbench.text.tokenizers import check_name
from feedbench.text.vocab import Vocab


@dataclass(frozen=True)
class TextConfig:
    """The settings of a text pipeline.

    Attributes:
        tokenizer: "spacy", "nltk" or "regex" (see :mod:`feedbench.text.tokenizers`).
        vocab: A :class:`Vocab`, the path of one saved with :meth:`Vocab.save`, or None to
            build one from the source (with `min_freq` and `max_size`).
        max_len: Most tokens kept per document; longer ones are truncated (and counted).
        lowercase: Lowercase each document before tokenizing.
        batch_size: Documents per batch.
        workers: Parallel tokenizers: DataLoader worker processes, or tf.data's
            ``num_parallel_calls``. None (the default): one per core less one. "autotune":
            tf.data's AUTOTUNE; torch, which has no autotuning, takes it as one worker per
            core. 0: torch tokenizes in the main process between steps (synchronously);
            tf.data runs the map sequentially but still prefetches on a background thread
            (unless `prefetch` is 0).
        shuffle: Shuffle the documents every epoch.
        bucket: Batch documents of similar length together (less padding).
        seed: Seed of the shuffle.
        prefetch: Batches made ahead: DataLoader ``prefetch_factor`` (per worker), tf.data
            ``prefetch`` buffer ("autotune" allowed; torch takes it as 2). 0: none in
            tf.data; torch takes it as 1 per worker.
        drop_last: Drop a last short batch (of each bucket, when bucketing).
        on_error: "raise" (a bad record is an error naming its file and line or row) or
            "skip" (dropped and counted).
        min_freq: When building the vocabulary: fewest occurrences a token needs.
        max_size: When building the vocabulary: most ids, the two special ones included.
        num_shards: Shards the source's records are dealt into (1: the whole source).
        shard_index: The shard this pipeline reads, 0 to num_shards - 1.

    Sharding (:mod:`feedbench.pipelines.core.sharding`) is static and the same in both
    frameworks: the records of the source in its listing order (JSONL lines holding a
    record, Parquet rows in file and row order, TFDS examples in TFDS's order), before any
    shuffle, are dealt round-robin, record i to shard ``i % num_shards``; the pipeline reads
    only its shard's documents, shuffles (and buckets) within it each epoch, and an epoch is
    one pass over it. These are ``tf.data.Dataset.shard(num_shards, shard_index)``
    semantics, applied before the shuffle on both sides (torch takes the subset of
    indices), so that both frameworks' shard k hold the same documents; unlike torch's
    ``DistributedSampler``, nothing is re-dealt each epoch or padded. Every record of the
    source is still read and checked when a pipeline is built, and the vocabulary and the
    number of classes are the whole source's, the same in every shard: under "raise" a bad
    record anywhere fails every shard; under "skip" each shard counts its own. More shards
    than records is a ConfigError.
    """

    tokenizer: str = "spacy"
    vocab: Vocab | str | os.PathLike[str] | None = None
    max_len: int = 512
    lowercase: bool = True
    batch_size: int = 64
    workers: int | str | None = None
    shuffle: bool = True
    bucket: bool = True
    seed: int = 0
    prefetch: int | str = 2
    drop_last: bool = False
    on_error: str = "raise"
    min_freq: int = 1
    max_size: int | None = None
    num_shards: int = 1
    shard_index: int = 0

    def __post_init__(self) -> None:
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers())
        if isinstance(self.vocab, os.PathLike):
            object.__setattr__(self, "vocab", os.fspath(self.vocab))
        check_name(self.tokenizer)
        if self.vocab is not None and not isinstance(self.vocab, (Vocab, str)):
            raise ConfigError("vocab must be a Vocab, the path of a saved one, or None, "
                              f"got {type(self.vocab).__name__}")
        if isinstance(self.vocab, Vocab):
            self.vocab.check(self.tokenizer, self.lowercase)
        checks.positive_int("max_len", self.max_len)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_int("min_freq", self.min_freq)
        if self.max_size is not None and (isinstance(self.max_size, bool) or not isinstance(self.max_size, int)
                                          or self.max_size < 2):
            raise ConfigError("max_size must be an integer >= 2 (the two special tokens) or None, "
                              f"got {self.max_size!r}")
        checks.count_or_autotune("workers", self.workers)
        checks.count_or_autotune("prefetch", self.prefetch)
        checks.choice("on_error", self.on_error, ON_ERROR)
        checks.seed(self.seed)
        for name in ("lowercase", "shuffle", "bucket", "drop_last"):
            checks.boolean(name, getattr(self, name))
        sharding.check(self.num_shards, self.shard_index)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (a Vocab is described, not listed)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if isinstance(self.vocab, Vocab):
            out["vocab"] = f"<Vocab of {len(self.vocab)} tokens>"
        return out


@dataclass(frozen=True)
class ServiceTextConfig(ServiceOptions, TextConfig):
    """The ``tf-service`` backend's settings: a TextConfig and where its service runs
    (:class:`~feedbench.pipelines.core.remote.ServiceOptions`). The tokenizer must be "regex":
    tf.data runs the others in Python, which the service's workers cannot call."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer != "regex":
            raise ConfigError(f"tokenizer {self.tokenizer!r}: tf.data runs it in Python (tf.numpy_function), which "
                              "tf.data service workers cannot call; use the regex tokenizer (--tokenizer regex)")


@dataclass(frozen=True)
class RayTextConfig(RayOptions, TextConfig):
    """The ``ray`` backend's settings: a TextConfig and where its Ray cluster runs
    (:class:`~feedbench.pipelines.core.remote.RayOptions`)."""
