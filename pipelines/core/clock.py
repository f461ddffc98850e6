"""Sleeping for an exact time: the emulated workload and the known-cost producers need it."""

from __future__ import annotations

import time

# time.sleep overshoots by about 0.2 ms on these machines (0.1-0.3 ms elsewhere); sleeping
# that much less and spinning the rest keeps a 20 ms step within microseconds of 20 ms for
# about 1% of a core.
_SPIN_S = 0.0004


def sleep_exactly(seconds: float) -> None:
    """Blocks for `seconds` of wall time: sleep (the CPU stays free), then a short spin."""
    sleep_until(time.perf_counter() + seconds)


def sleep_until(deadline: float) -> None:
    """Blocks until ``time.perf_counter()`` reaches `deadline`: sleep, then a short spin."""
    left = deadline - time.perf_counter()
    if left > _SPIN_S:
        time.sleep(left - _SPIN_S)
    while time.perf_counter() < deadline:
        time.sleep(0)  # yields the GIL: a bare spin would hold it from every other thread
