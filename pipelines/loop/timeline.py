"""The device's own timeline, where the device runs apart from the host: CUDA streams, and
the CPU's emulated device (``workloads.device``). Both give events with ``synchronize()`` and
``elapsed_time(end)`` in milliseconds; the loop reads idle, copy and compute time from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class CudaTimeline:
    """The current CUDA stream of `device`, as a timeline of timing events."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def event(self) -> torch.cuda.Event:
        """A timing event recorded on the current stream now."""
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


def read_events(steps: Sequence[tuple[Any, Any, Any]], window_start: Any) -> tuple[list[float], list[float],
                                                                                    list[float], float]:
    """(idle_i, h2d_i, compute_i in seconds, the device's window) from each step's three events
    (before the copy, after it, after the work) and the event that opened the window.

    idle_i is the gap between the end of step i-1's work (the window's start for the first)
    and the start of step i's; the device window runs from the window's start to the last
    step's end, so that idle, copy and compute add up to it exactly.
    """
    idle, h2d, compute = [], [], []
    previous_end = window_start
    for start, copied, end in steps:
        idle.append(previous_end.elapsed_time(start) / 1e3)
        h2d.append(start.elapsed_time(copied) / 1e3)
        compute.append(copied.elapsed_time(end) / 1e3)
        previous_end = end
    return idle, h2d, compute, window_start.elapsed_time(steps[-1][2]) / 1e3
