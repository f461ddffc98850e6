"""The text pipeline of :mod:`feedbench.text.torch_pipeline` with Ray Data making the batches:
the same documents, tokenizer, vocabulary, batch sampler (buckets) and padding collate, each
batch made by a Ray task, at most `workers` at once (:mod:`feedbench.pipelines.core.ray_loader`),
in a local Ray instance or an existing cluster (`ray_address`) instead of by a DataLoader worker
process. The
``ray`` backend: for a seed it gives the same batches as ``torch_loader``.
"""

from __future__ import annotations

import dataclasses
import os

from feedbench.pipelines.core.ray_loader import RayLoader
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.text._config import RayTextConfig
from feedbench.text.torch_pipeline import TextFacts, collate, text_dataset
from feedbench.text.vocab import Vocab


class RayTextLoader(TextFacts, RayLoader):
    """Batches (token_ids int64 [B, T], lengths int64 [B], labels int64 [B]) made by Ray tasks;
    what it reports: :class:`~feedbench.text.torch_pipeline.TextFacts`."""

    def __init__(self, source: str | os.PathLike[str], cfg: RayTextConfig, through: str | None) -> None:
        dataset, sampler, prepared = text_dataset(source, cfg, through)
        super().__init__(dataset, sampler, collate, cfg.workers, cfg.prefetch, cfg.ray_address, batch_bytes(cfg))
        self._facts(cfg, prepared)

    def loader_stats(self) -> LoaderStats:
        """TextFacts' stats, with the batches Ray Data makes ahead (see RayLoader.batches_ahead)."""
        return dataclasses.replace(super().loader_stats(), batches_ahead=self.batches_ahead())


def batch_bytes(cfg: RayTextConfig) -> int:
    """The most bytes a batch under `cfg` holds: int64 token ids of `max_len`, lengths and labels."""
    return cfg.batch_size * (cfg.max_len + 2) * 8


def build_ray_loader(source: str | os.PathLike[str], cfg: RayTextConfig) -> RayTextLoader:
    """The Ray Data loader for `source` under `cfg` (see :func:`ray_loader`)."""
    return RayTextLoader(source, cfg, None)


def build_ray_prefix(source: str | os.PathLike[str], cfg: RayTextConfig, through: str) -> RayTextLoader:
    """The pipeline stopped after the document stage `through`, as
    :func:`~feedbench.text.torch_pipeline.build_torch_prefix` stops the DataLoader's."""
    return RayTextLoader(source, cfg, through)


def ray_loader(
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
    ray_address: str = "",
) -> RayTextLoader:
    """:func:`feedbench.text.torch_loader` with Ray Data making the batches: the same keywords,
    meanings and batches (token_ids int64 [B, T] padded with 0, lengths int64 [B], labels int64
    [B]), and `ray_address`.

    Differences that cannot be avoided: `workers` counts Ray tasks of one CPU running at once
    (one per usable CPU for "autotune"; 0 runs one, a Ray Data stage cannot run without one;
    beyond the cluster's CPUs they wait), `prefetch` the batches the consumer fetches ahead
    (``prefetch_batches``), while Ray Data runs tasks ahead for as long as their batches fit in
    its share of the object store (text batches are small: most often the whole epoch); each
    epoch is one execution of a Ray Dataset, whose tasks run in the worker processes Ray keeps
    (the first epoch waits for them to start and load torch and the tokenizer: seconds; later
    ones do not), the dataset and collate sent to them once an epoch; batches cross through
    Ray's object store (:mod:`feedbench.pipelines.core.ray_loader`). With ``ray_address=""`` the first
    pass starts a local Ray instance in this process, on the CPUs it may use, and closing the
    loader (or its collection, or exit) stops it with every process it started; with an address
    it joins that cluster and leaves it running. One Ray session per process: loaders of one
    address share it (:mod:`feedbench.pipelines.core.ray_cluster`).

    Args:
        ray_address: ``host:port`` of a running cluster's GCS (from one of its nodes) or
            ``ray://host:port`` (Ray Client); "" for a local instance.

    Raises:
        ConfigError, DatasetError, MissingDependencyError: As :func:`feedbench.text.torch_loader`;
            ConfigError too where Ray Data is not installed or `ray_address` answers nothing (at
            once); DatasetError where the cluster stopped answering mid-run (naming it).
    """
    cfg = RayTextConfig(
        tokenizer=tokenizer, vocab=vocab, max_len=max_len, lowercase=lowercase, batch_size=batch_size,
        workers=workers, shuffle=shuffle, bucket=bucket, seed=seed, prefetch=prefetch, drop_last=drop_last,
        on_error=on_error, min_freq=min_freq, max_size=max_size, num_shards=num_shards, shard_index=shard_index,
        ray_address=ray_address,
    )
    return build_ray_loader(source, cfg)
