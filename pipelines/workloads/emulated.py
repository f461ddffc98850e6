"""The emulated accelerator: a fixed time per step that leaves the CPU free, as DLIO and MLPerf
Storage emulate an accelerator.

``emulated:<t>`` runs asynchronously, as a GPU does: on CUDA each step launches a calibrated
busy kernel; on the CPU it launches t seconds of work onto an emulated device
(:mod:`~feedbench.pipelines.workloads.device`). Either way the host returns at once and
fetches the next batch while the device works, so that a CPU run predicts what a GPU of that
step time sees. ``emulated-sync:<t>`` keeps the step in the host's thread (it sleeps, or on
CUDA waits for its kernel): a synchronous producer then takes d + c per step, not max(d, c).
"""

from __future__ import annotations

from typing import Any

from feedbench.pipelines.core.clock import sleep_exactly
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.workloads.base import Workload
from feedbench.pipelines.workloads.device import EmulatedDevice


class Emulated(Workload):
    """A fixed time per step that leaves the CPU free.

    Asynchronous (the default): on the CPU the step launches `seconds` onto an emulated device
    (:meth:`timeline` gives it to the loop, which reads idle and busy time from its events); on
    CUDA it launches ``torch.cuda._sleep``, a kernel that spins for a number of GPU clock
    cycles, calibrated against CUDA events at setup so that one step keeps the device busy for
    `seconds`. Synchronous: the host sleeps (to the microsecond: see ``core.clock``), or on CUDA
    waits for the kernel.

    Args:
        seconds: Device time per step.
        synchronous: Run the step in the host's thread (``emulated-sync:<t>``).
    """

    warmup_steps = 1

    def __init__(self, seconds: float, *, synchronous: bool = False) -> None:
        if not seconds > 0:
            raise ConfigError(f"an emulated step must take a positive time, got {seconds} s")
        self.seconds = float(seconds)
        self.synchronous = synchronous
        self.name = f"emulated{'-sync' if synchronous else ''}:{_format_ms(self.seconds)}"
        self.cycles_per_s: float | None = None
        self._device: EmulatedDevice | None = None

    def setup(self, device: Any) -> None:
        super().setup(device)
        self.close()
        self.cycles_per_s = _calibrate_cuda_sleep() if device.type == "cuda" else None
        if device.type != "cuda" and not self.synchronous:
            self._device = EmulatedDevice()

    def timeline(self) -> EmulatedDevice | None:
        return self._device

    def step(self, batch: Any) -> None:
        if self._device is not None:
            self._device.launch(self.seconds)
        elif self.cycles_per_s is None:
            sleep_exactly(self.seconds)
        else:
            import torch

            torch.cuda._sleep(int(self.seconds * self.cycles_per_s))
            if self.synchronous:
                torch.cuda.current_stream().synchronize()

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_device": None}  # a thread does not cross a process boundary


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
