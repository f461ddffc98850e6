"""The image pipeline of :mod:`feedbench.vision.torch_pipeline` with Ray Data making the batches:
the same dataset (read, decode, transforms v2), sampler and collate, each batch made by a Ray
task, at most `workers` at once (:mod:`feedbench.pipelines.core.ray_loader`), in a local Ray
instance or an existing cluster (`ray_address`) instead of by a DataLoader worker process. The ``ray`` backend: for
a seed it gives the same batches as ``torch_loader``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import torch

from feedbench.pipelines.core.ray_loader import RayLoader
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.vision._common import RayImageConfig, Source
from feedbench.vision.torch_pipeline import BadImages, collate, image_dataset


class RayImageLoader(BadImages, RayLoader):
    """Batches (images [B, 3, S, S], labels int64 [B]) made by Ray tasks; bad images handled in
    the consuming thread as the DataLoader's are (:class:`~feedbench.vision.torch_pipeline.BadImages`)."""

    def __init__(self, source: str | os.PathLike[str] | Source, cfg: RayImageConfig, through: str | None) -> None:
        dataset, sampler = image_dataset(source, cfg, through)
        super().__init__(dataset, sampler, collate, cfg.workers, cfg.prefetch, cfg.ray_address, batch_bytes(cfg))
        self.config = cfg
        self._problems: set[str] = set()

    def loader_stats(self) -> LoaderStats:
        """BadImages' stats, with the batches Ray Data makes ahead (see RayLoader.batches_ahead)."""
        return dataclasses.replace(super().loader_stats(), batches_ahead=self.batches_ahead())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.checked(super().__iter__())


def batch_bytes(cfg: RayImageConfig) -> int:
    """The bytes of a batch under `cfg`: images of 3 x S x S float32 or uint8, int64 labels."""
    return cfg.batch_size * (3 * cfg.image_size ** 2 * (4 if cfg.output == "float" else 1) + 8)


def build_ray_loader(source: str | os.PathLike[str] | Source, cfg: RayImageConfig) -> RayImageLoader:
    """The Ray Data loader for `source` under `cfg` (see :func:`ray_loader`)."""
    return RayImageLoader(source, cfg, None)


def build_ray_prefix(source: str | os.PathLike[str] | Source, cfg: RayImageConfig, through: str) -> RayImageLoader:
    """The pipeline stopped after the sample stage `through`, as
    :func:`~feedbench.vision.torch_pipeline.build_torch_prefix` stops the DataLoader's."""
    return RayImageLoader(source, cfg, through)


def ray_loader(
    source: str | os.PathLike[str] | Source,
    *,
    train: bool = True,
    batch_size: int = 64,
    workers: int | str | None = None,
    prefetch: int | str = 2,
    shuffle: bool = True,
    seed: int = 0,
    image_size: int = 224,
    output: str = "float",
    drop_last: bool | None = None,
    on_error: str = "raise",
    num_shards: int = 1,
    shard_index: int = 0,
    ray_address: str = "",
) -> RayImageLoader:
    """:func:`feedbench.vision.torch_loader` with Ray Data making the batches: the same keywords,
    meanings and batches (images [B, 3, S, S] NCHW, labels int64 [B]), and `ray_address`.

    Differences that cannot be avoided: `workers` counts Ray tasks of one CPU running at once
    (one per usable CPU for "autotune"; 0 runs one, a Ray Data stage cannot run without one;
    beyond the cluster's CPUs they wait), `prefetch` the batches the consumer fetches ahead
    (``prefetch_batches``), while Ray Data runs tasks ahead for as long as their batches fit in
    its share of the object store (a whole epoch of small batches); each epoch is one execution
    of a Ray Dataset, whose tasks run in the worker processes Ray keeps (the first epoch waits
    for them to start and import torch: seconds; later ones do not), the dataset and collate
    sent to them once an epoch; batches cross through Ray's object store
    (:mod:`feedbench.pipelines.core.ray_loader`). With ``ray_address=""`` the first pass starts
    a local Ray instance in this process, on the CPUs it may use, and closing the loader (or
    its collection, or exit) stops it with every process it started; with an address it joins
    that cluster and leaves it running. One Ray session per process: loaders of one address
    share it (:mod:`feedbench.pipelines.core.ray_cluster`).

    Args:
        ray_address: ``host:port`` of a running cluster's GCS (from one of its nodes) or
            ``ray://host:port`` (Ray Client); "" for a local instance.

    Raises:
        ConfigError: A keyword out of range; more shards than images; Ray Data not installed;
            a `ray_address` that nothing answers at (at once).
        DatasetError: The source is missing or empty; in iteration, a bad image ("raise"), or
            the cluster stopped answering (naming it).
    """
    cfg = RayImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index, ray_address=ray_address,
    )
    return build_ray_loader(source, cfg)
