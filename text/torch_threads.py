"""The text pipeline of :mod:`feedbench.text.torch_pipeline` with threads for workers: the same
documents, tokenizer, vocabulary, batch sampler (buckets) and padding collate, each batch made
by one of `workers` threads of this process (:mod:`feedbench.pipelines.core.threads`,
torchdata.nodes) instead of a DataLoader worker process. The ``torch-threads`` backend: for a
seed it gives the same batches as ``torch_loader``, with any number of workers of either kind.
"""

from __future__ import annotations

import os

from feedbench.pipelines.core.threads import ThreadLoader
from feedbench.text._config import TextConfig
from feedbench.text.torch_pipeline import TextFacts, collate, text_dataset
from feedbench.text.vocab import Vocab


class ThreadTextLoader(TextFacts, ThreadLoader):
    """Batches (token_ids int64 [B, T], lengths int64 [B], labels int64 [B]) made by threads;
    what it reports: :class:`~feedbench.text.torch_pipeline.TextFacts`."""

    def __init__(self, source: str | os.PathLike[str], cfg: TextConfig, through: str | None) -> None:
        dataset, sampler, prepared = text_dataset(source, cfg, through)
        super().__init__(dataset, sampler, collate, cfg.workers, cfg.prefetch)
        self._facts(cfg, prepared)


def build_threads_loader(source: str | os.PathLike[str], cfg: TextConfig) -> ThreadTextLoader:
    """The thread loader for `source` under `cfg` (see :func:`threads_loader`)."""
    return ThreadTextLoader(source, cfg, None)


def build_threads_prefix(source: str | os.PathLike[str], cfg: TextConfig, through: str) -> ThreadTextLoader:
    """The pipeline stopped after the document stage `through`, as
    :func:`~feedbench.text.torch_pipeline.build_torch_prefix` stops the DataLoader's."""
    return ThreadTextLoader(source, cfg, through)


def threads_loader(
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
) -> ThreadTextLoader:
    """:func:`feedbench.text.torch_loader` with threads making the batches: the same keywords,
    meanings and batches (token_ids int64 [B, T] padded with 0, lengths int64 [B], labels int64 [B]).

    Differences that cannot be avoided: `workers` are threads of this process (one per usable
    CPU for "autotune"; 0: the calling thread tokenizes each batch when it is asked for),
    `prefetch` counts batches made ahead per thread; tokenizing is Python (the regex tokenizer's
    native part excepted), so threads take turns on the interpreter's lock where processes run
    side by side (:mod:`feedbench.pipelines.core.threads`).

    Raises:
        ConfigError, DatasetError, MissingDependencyError: As :func:`feedbench.text.torch_loader`.
    """
    cfg = TextConfig(
        tokenizer=tokenizer, vocab=vocab, max_len=max_len, lowercase=lowercase, batch_size=batch_size,
        workers=workers, shuffle=shuffle, bucket=bucket, seed=seed, prefetch=prefetch, drop_last=drop_last,
        on_error=on_error, min_freq=min_freq, max_size=max_size, num_shards=num_shards, shard_index=shard_index,
    )
    return build_threads_loader(source, cfg)
