"""Seeds of their own for each random stream drawn from one user seed."""

from __future__ import annotations

import hashlib


def stream_seed(seed: int, stream: str) -> int:
    """A non-negative int64 seed for the random stream named `stream` of `seed`.

    The same (seed, stream) always gives the same number, and different streams are
    independent: the tf.data pipelines seed their shuffle and their crops from it.
    """
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch` (0 first) of a pipeline whose graph is made anew every epoch (a
    tf.data service job), where tf.data's own streams would restart each time: `seed` itself for
    the first epoch, and a seed of its own for each later one, so that each epoch draws its own
    order, crops and flips, the same for the same seed."""
    return seed if epoch == 0 else stream_seed(seed, f"epoch {epoch}")


def service_order(seed: int, count: int) -> list[int]:
    """The order in which a tf.data service pipeline's client deals its `count` samples for the
    epoch seeded `seed` (a permutation; seeded, the same for the same seed): its shuffle is done
    there rather than in a whole-shard buffer on each worker."""
    import numpy as np

    return np.random.default_rng(stream_seed(seed, "service order")).permutation(count).tolist()
