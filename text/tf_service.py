"""The text pipeline of :mod:`feedbench.text.tf_pipeline` with its preprocessing on tf.data
service workers: the ``tf-service`` backend (see :mod:`feedbench.vision.tf_service` for how the
service is started and used).
"""

from __future__ import annotations

import os
from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.tf_service import ServiceLoader
from feedbench.text._common import SAMPLE_STAGES
from feedbench.text._config import ServiceTextConfig
from feedbench.text.tf_pipeline import remote_batches
from feedbench.text.vocab import Vocab


def build_service_dataset(source: str | os.PathLike[str] | Any, cfg: ServiceTextConfig) -> ServiceLoader:
    """The tf.data service loader for `source` under `cfg` (see :func:`service_dataset`)."""
    return ServiceLoader(*remote_batches(source, cfg, None), cfg)


def build_service_prefix(source: str | os.PathLike[str] | Any, cfg: ServiceTextConfig, through: str) -> ServiceLoader:
    """The service's pipeline stopped after the document stage `through`, as
    :func:`~feedbench.text.tf_pipeline.build_tf_prefix` stops tf.data's."""
    checks.choice("through", through, SAMPLE_STAGES)
    return ServiceLoader(*remote_batches(source, cfg, through), cfg)


def service_dataset(
    source: str | os.PathLike[str] | Any,
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
    service: str = "",
    processing_mode: str = "distributed_epoch",
) -> ServiceLoader:
    """:func:`feedbench.text.tf_dataset` with its preprocessing on tf.data service workers: the
    same keywords, tokens and batches ``(token_ids [B, T], lengths [B], labels [B])``, iterated
    as a re-iterable loader (each ``iter()`` is a new service job: the next epoch).

    `service` and `processing_mode` are those of :func:`feedbench.vision.tf_service.service_dataset`
    ("distributed_epoch": each document tokenized once an epoch, by one worker; with more than
    one worker, each worker buckets and batches its own documents, so batches differ from
    tf_dataset's and come in no fixed order).

    Differences from tf_dataset that cannot be avoided:

    - Only the "regex" tokenizer: "spacy" and "nltk" run in Python (``tf.numpy_function``),
      which the workers, other processes, cannot call (ConfigError). The default "spacy" must
      be changed. A document that TensorFlow's ICU lowercases otherwise than Python (see
      tf_dataset) fails on a worker for the same reason.
    - `workers` is the number of service worker processes (0 starts one; "autotune": one per
      usable CPU), each encoding its documents in turn; `prefetch` is the client's buffer.
    - The documents are read, checked and counted in this process, as tf_dataset does, and
      sent to the workers inside the pipeline's graph (a corpus must fit the graph's 2 GB).
    - Each epoch is a job of its own, whose graph restarts its seeded streams: the epochs are
      seeded in turn from `seed` (``epoch_seed``), so that each has its own order, the same
      for the same seed, though not tf_dataset's. With `shuffle`, the documents are permuted
      in this process and shuffled again on the workers through a buffer of 8 batches.

    Raises:
        ConfigError: A keyword out of range, a tokenizer other than "regex", a dispatcher
            that cannot be reached (in the first ``iter()``).
        DatasetError: A missing, empty or bad source ("raise"); in iteration, the service's
            error, naming its address.
        LoaderError: A local service that could not start or lost a worker.
    """
    cfg = ServiceTextConfig(
        tokenizer=tokenizer, vocab=vocab, max_len=max_len, lowercase=lowercase, batch_size=batch_size,
        workers=workers, shuffle=shuffle, bucket=bucket, seed=seed, prefetch=prefetch, drop_last=drop_last,
        on_error=on_error, min_freq=min_freq, max_size=max_size, num_shards=num_shards, shard_index=shard_index,
        service=service, processing_mode=processing_mode,
    )
    return build_service_dataset(source, cfg)
