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
