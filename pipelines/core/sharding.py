"""The static deal of a source's samples into shards, one definition for every pipeline (image
and text, torch and tf.data): the keywords ``num_shards`` and ``shard_index``.

The samples of a source, in the source's own listing order (files in torchvision's order,
Parquet rows in file and row order, corpus records in file order, TFDS examples in the
order TFDS lists them), before any shuffle, are dealt round-robin: sample i belongs to shard
``i % num_shards``. A pipeline reads only its shard; its shuffle shuffles within the shard
each epoch, and an epoch is one pass over the shard. The deal is the same every epoch, as
``tf.data.Dataset.shard(num_shards, index)`` applied before the shuffle, not re-dealt and
padded every epoch as torch's ``DistributedSampler`` does: so both frameworks' shard k hold
the same samples, and N ranks each over its shard read the whole source once an epoch.
"""

from __future__ import annotations

from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.errors import ConfigError


def check(num_shards: Any, shard_index: Any) -> None:
    """``num_shards`` a whole number >= 1, ``shard_index`` one from 0 to num_shards - 1.

    Raises:
        ConfigError: Naming the keyword at fault and its value.
    """
    checks.whole_number("num_shards", num_shards, minimum=1)
    checks.whole_number("shard_index", shard_index, minimum=0, maximum=num_shards - 1,
                        hint=f"a whole number from 0 to num_shards - 1 = {num_shards - 1}")


def positions(count: int, num_shards: int, shard_index: int, origin: str) -> range:
    """The positions in the source's listing order of shard `shard_index`'s samples, of the
    `count` samples of `origin`: i with ``i % num_shards == shard_index``.

    Raises:
        ConfigError: More shards than samples, so that some shard would be empty (raised
            for every shard index alike, so that all the ranks of a run refuse it together).
    """
    if num_shards > count:
        empty = f"shard {count}" if count == num_shards - 1 else f"shards {count} to {num_shards - 1}"
        raise ConfigError(f"num_shards={num_shards} is more than the {count} sample(s) of {origin}: "
                          f"{empty} would be empty (shard_index={shard_index})")
    return range(shard_index, count, num_shards)


def holds(position: int, num_shards: int, shard_index: int) -> bool:
    """Whether the sample at `position` of the listing order is shard `shard_index`'s."""
    return position % num_shards == shard_index


def part(num_shards: int, shard_index: int) -> str:
    """" in shard k of n" for messages where a pipeline reads one shard; "" where it reads all."""
    return f" in shard {shard_index} of {num_shards}" if num_shards > 1 else ""
