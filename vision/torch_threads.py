"""The image pipeline of :mod:`feedbench.vision.torch_pipeline` with threads for workers: the
same dataset (read, decode, transforms v2), sampler and collate, each batch made by one of
`workers` threads of this process (:mod:`feedbench.pipelines.core.threads`, torchdata.nodes)
instead of a DataLoader worker process. The ``torch-threads`` backend: for a seed it gives the
same batches as ``torch_loader``, with any number of workers of either kind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from feedbench.pipelines.core.threads import ThreadLoader
from feedbench.vision._common import ImageConfig, Source
from feedbench.vision.torch_pipeline import BadImages, collate, image_dataset


class ThreadImageLoader(BadImages, ThreadLoader):
    """Batches (images [B, 3, S, S], labels int64 [B]) made by threads; bad images handled in
    the consuming thread as the DataLoader's are (:class:`~feedbench.vision.torch_pipeline.BadImages`)."""

    def __init__(self, source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str | None) -> None:
        dataset, sampler = image_dataset(source, cfg, through)
        super().__init__(dataset, sampler, collate, cfg.workers, cfg.prefetch)
        self.config = cfg
        self._problems: set[str] = set()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.checked(super().__iter__())


def build_threads_loader(source: str | os.PathLike[str] | Source, cfg: ImageConfig) -> ThreadImageLoader:
    """The thread loader for `source` under `cfg` (see :func:`threads_loader`)."""
    return ThreadImageLoader(source, cfg, None)


def build_threads_prefix(source: str | os.PathLike[str] | Source, cfg: ImageConfig,
                         through: str) -> ThreadImageLoader:
    """The pipeline stopped after the sample stage `through`, as
    :func:`~feedbench.vision.torch_pipeline.build_torch_prefix` stops the DataLoader's."""
    return ThreadImageLoader(source, cfg, through)


def threads_loader(
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
) -> ThreadImageLoader:
    """:func:`feedbench.vision.torch_loader` with threads making the batches: the same keywords,
    meanings and batches (images [B, 3, S, S] NCHW, labels int64 [B]).

    Differences that cannot be avoided: `workers` are threads of this process (one per usable
    CPU for "autotune"; 0: batches made in the calling thread when asked for), `prefetch` counts
    batches made ahead per thread; the threads share the interpreter's lock for the Python parts
    of a sample and the process's intra-op threads (:mod:`feedbench.pipelines.core.threads`).

    Raises:
        ConfigError: A keyword out of range; more shards than images.
        DatasetError: The source is missing or empty; in iteration, a bad image ("raise").
    """
    cfg = ImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index,
    )
    return build_threads_loader(source, cfg)
