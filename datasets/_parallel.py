"""Generation spread over all cores, in order, with progress."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from feedbench.pipelines.core.machine import usable_cpus

T = TypeVar("T")


def chunked(n: int, size: int) -> list[range]:
    """Splits range(n) into consecutive ranges of at most `size`."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def map_chunks(
    fn: Callable[..., list[T]],
    chunks: Sequence[range],
    args: tuple[Any, ...],
    *,
    workers: int | None,
    progress: Callable[[int], None] | None,
) -> Iterator[list[T]]:
    """Yields fn(chunk, *args) for each chunk, in order, computed on `workers` processes.

    Workers are spawned, not forked: the caller may have torch or TensorFlow loaded, whose
    threads do not survive a fork. One worker, or one chunk, runs in this process.

    Args:
        fn: A module-level function (it is pickled to the workers).
        chunks: The index ranges to compute.
        args: Further arguments to `fn`, the same for every chunk.
        workers: Processes to use; None for every available core.
        progress: Called with the number of items of each chunk as it completes.
    """
    workers = min(workers or len(usable_cpus()), len(chunks))
    if workers <= 1:
        for chunk in chunks:
            result = fn(chunk, *args)
            if progress:
                progress(len(chunk))
            yield result
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(fn, chunk, *args) for chunk in chunks]
        try:
            for chunk, future in zip(chunks, futures):
                result = future.result()
                if progress:
                    progress(len(chunk))
                yield result
        finally:
            for future in futures:
                future.cancel()
