"""What the consumer loop runs on each batch: emulated accelerators and real training steps.

A workload is an object with one small interface (:class:`Workload`): ``bind(loader)``
first (optional: a workload that sizes itself from its data reads the loader's attributes),
``setup(device)`` once, ``warmup(batch)`` on the first batch before anything is measured (cuDNN autotuning,
allocator growth, calibration), then ``step(batch)`` per measured step. ``step`` receives the
batch already on the device, in the structure the loader yields (a tuple, list or dict of
torch tensors). On CUDA a step may return before its kernels finish: the loop times the
device with CUDA events. Users implement their own by subclassing :class:`Workload`.

Names the loop understands (:func:`parse_workload`):

- ``emulated:<time>`` (``emulated:20ms``, ``emulated:500us``, ``emulated:0.02s``; a bare number
  is milliseconds): a fixed time per step that leaves the CPU free, as DLIO and MLPerf
  Storage emulate an accelerator: a calibrated device-busy kernel on CUDA, ``sleep`` on the CPU.
- ``resnet18``, ``resnet50``: a training step of torchvision's ResNet on ``(images, labels)``
  (bf16 autocast and channels_last on CUDA; uint8 images are normalized on the device).
- ``textcls``: an embedding + masked mean pooling classifier training step on
  ``(token_ids, lengths, labels)``.
"""

from __future__ import annotations

import re
from typing import Any

from feedbench.pipelines.core.clock import sleep_exactly
from feedbench.pipelines.core.errors import ConfigError

_TIME = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>us|ms|s)?\s*$")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1e-3}


class Workload:
    """The interface of a workload; subclass it and implement :meth:`step`.

    Attributes:
        name: How results name the workload.
        warmup_steps: Steps :meth:`warmup` runs on the first batch before measuring.
    """

    name = "workload"
    warmup_steps = 3

    def bind(self, loader: Any) -> None:
        """Called by ``measure`` with the loader before :meth:`setup`; by default does nothing.

        A workload that must be sized to its data reads what it needs here (the textcls
        workload reads ``len(loader.vocab)`` and ``loader.num_classes`` when present) rather
        than guessing from a batch. It must not iterate the loader.
        """

    def setup(self, device: Any) -> None:
        """Prepares to run on `device` (a ``torch.device``): build models, calibrate."""
        self.device = device

    def warmup(self, batch: Any) -> None:
        """Runs `warmup_steps` unmeasured steps on `batch` (on the device)."""
        for _ in range(self.warmup_steps):
            self.step(batch)

    def step(self, batch: Any) -> None:
        """One step on `batch` (already on the device). May return before the device is done."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class Emulated(Workload):
    """A fixed time per step that leaves the CPU free.

    On the CPU the step sleeps (to the microsecond: see ``_clock``); on CUDA it launches ``torch.cuda._sleep``, a kernel that spins
    for a number of GPU clock cycles, calibrated against CUDA events at setup so that one
    step keeps the device busy for `seconds` while the host goes on.

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


def parse_workload(spec: str | Workload) -> Workload:
    """The workload `spec` names, or `spec` itself when it is already a Workload.

    Raises:
        ConfigError: A name that does not parse, naming it and what is accepted.
    """
    if isinstance(spec, Workload):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"workload must be a name or a Workload object, got {type(spec).__name__}")
    name = spec.strip().lower()
    if name.startswith("emulated:"):
        match = _TIME.match(name.split(":", 1)[1])
        if match is None:
            raise ConfigError(f"workload {spec!r}: expected emulated:<time>, e.g. emulated:20ms, emulated:500us")
        return Emulated(float(match["value"]) * _UNIT_S[match["unit"]])
    if name in MODEL_WORKLOADS:
        from feedbench.pipelines.workloads import models as _models

        return getattr(_models, MODEL_WORKLOADS[name])()
    raise ConfigError(
        f"unknown workload {spec!r}; choose emulated:<time> (e.g. emulated:20ms), "
        f"{', '.join(MODEL_WORKLOADS)}, or pass a Workload object"
    )


# Name -> class in feedbench.pipelines.workloads.models (imported only when asked for: torchvision).
MODEL_WORKLOADS = {"resnet18": "ResNet18", "resnet50": "ResNet50", "textcls": "TextClassifier"}
