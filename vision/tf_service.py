"""The image pipeline of :mod:`feedbench.vision.tf_pipeline` with its preprocessing on tf.data
service workers: the ``tf-service`` backend.

The same graph (file list, shuffle, read, decode, transforms, batch) is handed to a tf.data
service (``tf.data.experimental.service.distribute``); its workers, other processes, run it
and send the batches to this process, which prefetches them
(:class:`feedbench.pipelines.core.tf_service.ServiceLoader`: a local service of `workers`
processes started and ended by the loader, or an existing one at ``service``).
"""

from __future__ import annotations

import os
from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.tf_service import ServiceLoader
from feedbench.vision._common import SAMPLE_STAGES, ServiceImageConfig, Source
from feedbench.vision.tf_pipeline import remote_batches


def build_service_dataset(source: str | os.PathLike[str] | Source | Any, cfg: ServiceImageConfig) -> ServiceLoader:
    """The tf.data service loader for `source` under `cfg` (see :func:`service_dataset`)."""
    return ServiceLoader(*remote_batches(source, cfg, None), cfg)


def build_service_prefix(source: str | os.PathLike[str] | Source | Any, cfg: ServiceImageConfig,
                         through: str) -> ServiceLoader:
    """The service's pipeline stopped after the sample stage `through`, as
    :func:`~feedbench.vision.tf_pipeline.build_tf_prefix` stops tf.data's."""
    checks.choice("through", through, SAMPLE_STAGES)
    return ServiceLoader(*remote_batches(source, cfg, through), cfg)


def service_dataset(
    source: str | os.PathLike[str] | Source | Any,
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
    service: str = "",
    processing_mode: str = "distributed_epoch",
) -> ServiceLoader:
    """:func:`feedbench.vision.tf_dataset` with its preprocessing on tf.data service workers:
    the same keywords, transforms and batches (images [B, S, S, 3] NHWC, labels int64 [B]),
    iterated as a re-iterable loader (each ``iter()`` is a new service job: the next epoch).

    Two more keywords: `service`, ``grpc://host:port`` of an existing dispatcher ("": a local
    service of `workers` worker processes, started on the first ``iter()`` and ended by
    ``close()``, at garbage collection or at exit); and `processing_mode`:

    - "distributed_epoch" (the default): the dispatcher deals the shard's files out to the
      workers as they ask; each image is made once an epoch, by one worker. With more than
      one worker the batches come in no fixed order and each worker ends the epoch with a
      short batch of its own (dropped with `drop_last`).
    - "parallel_epochs": every worker makes the whole epoch; K workers give K copies of it.

    Differences from tf_dataset that cannot be avoided:

    - `workers` is the number of service worker processes (0 starts one: a service cannot run
      without a worker; "autotune": one per usable CPU); each maps its samples in turn, as a
      DataLoader worker does. With `service`, the dispatcher's own workers do the work and
      `workers` only names the cell.
    - `prefetch` is the client's buffer of batches received.
    - The workers read files by path: a remote service's workers must see the same paths.
      Parquet shards cannot be read (tf.data reads them through a Python generator, which runs
      only in the client): ConfigError.
    - Bad files are found by the same checks before the run, in this process, and skipped and
      counted or raised as tf_dataset does; an image that passes them and still fails to
      decode on a worker ends the iteration with the worker's error (a worker cannot report a
      skip back), even under ``on_error="skip"``.
    - Each epoch is a job of its own, whose graph restarts its seeded streams: the epochs are
      seeded in turn from `seed` (``epoch_seed``), so that each has its own order, crops and
      flips, the same for the same seed, though not tf_dataset's draws. With `shuffle`, the
      file list is permuted in this process and shuffled again on the workers through a buffer
      of 8 batches (tf_dataset shuffles the whole list in one buffer).

    Raises:
        ConfigError: A keyword out of range; a Parquet source; a dispatcher that cannot be
            reached (in the first ``iter()``).
        DatasetError: The source is missing or empty, or holds a bad file ("raise"); in
            iteration, the service's error, naming its address.
        LoaderError: A local service that could not start or lost a worker.
    """
    cfg = ServiceImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index, service=service, processing_mode=processing_mode,
    )
    return build_service_dataset(source, cfg)
