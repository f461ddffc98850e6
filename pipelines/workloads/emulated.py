"""The emulated accelerator: a fixed time per step that leaves the CPU free (DLIO and MLPerf
Storage emulate an accelerator so)."""

from __future__ import annotations

from typing import Any

from feedbench.pipelines.core.clock import sleep_exactly
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.workloads.base import Workload


class Emulated(Workload):
    """A fixed time per step that leaves the CPU free.

    On the CPU the step sleeps (to the microsecond: see ``_clock``); on CUDA it launches
    ``torch.cuda._sleep``, a kernel that spins for a number of GPU clock cycles, calibrated
    against CUDA events at setup so that one step keeps the device busy for `seconds` while the
    host goes on.

    Args:
        seconds: Device time per step.
    """

    warmup_steps = 1

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ConfigError(f"an emulated step must take a positive time, got {seconds} s")
        self.seconds = float(seconds)
        self.name = f"emulated:{_format_ms(self.seconds)}"
        self.cycles_per_s: float | None = None

    def setup(self, device: Any) -> None:
        super().setup(device)
        self.cycles_per_s = _calibrate_cuda_sleep() if device.type == "cuda" else None

    def step(self, batch: Any) -> None:
        if self.cycles_per_s is None:
            sleep_exactly(self.seconds)
        else:
            import torch

            torch.cuda._sleep(int(self.seconds * self.cycles_per_s))


def _format_ms(seconds: float) -> str:
    return f"{seconds * 1e3:g}ms"


def _calibrate_cuda_sleep(target_s: float = 0.05, rounds: int = 5) -> float:
    """GPU clock cycles per second that ``torch.cuda._sleep`` spins, from CUDA events.

    The GPU is first kept busy for about 0.2 s (lazy kernel loading, clocks ramping up),
    then each round times two spins, of about `target_s` and twice that, and takes the
    slope, which cancels the fixed cost of a launch; the median of the rounds is the rate.
    """
    import torch

    def seconds(cycles: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    seconds(1_000_000)
    guess = 1_000_000 / seconds(1_000_000)
    seconds(int(guess * 0.2))  # warm: clocks up before the rounds that count
    rates = []
    for _ in range(rounds):
        short, long = int(guess * target_s), int(guess * 2 * target_s)
        rates.append((long - short) / (seconds(long) - seconds(short)))
    return sorted(rates)[len(rates) // 2]
