"""What the consumer loop runs on each batch: emulated accelerators and real training steps.

A workload is an object with one small interface (:class:`Workload`): ``bind(stats)``
first (optional: a workload that sizes itself from its data reads what the loader reports,
a :class:`~feedbench.pipelines.core.stats.LoaderStats`),
``setup(device)`` once, ``warmup(batch)`` on the first batch before anything is measured (cuDNN autotuning,
allocator growth, calibration), then ``step(batch)`` per measured step. ``step`` receives the
batch already on the device, in the structure the loader yields (a tuple, list or dict of
torch tensors). On CUDA a step may return before its kernels finish: the loop times the
device with CUDA events. Users implement their own by subclassing :class:`Workload`.

Names the loop understands (:func:`parse_workload`):

- ``emulated:<time>`` (``emulated:20ms``, ``emulated:500us``, ``emulated:0.02s``; a bare number
  is milliseconds): a fixed time per step that leaves the CPU free, as DLIO and MLPerf
  Storage emulate an accelerator, run asynchronously: a calibrated device-busy kernel on
  CUDA, an emulated device (a thread busy for the time) on the CPU.
- ``emulated-sync:<time>``: the same time, in the host's thread (the step returns when done).
- ``resnet18``, ``resnet50``: a training step of torchvision's ResNet on ``(images, labels)``
  (bf16 autocast and channels_last on CUDA; uint8 images are normalized on the device).
- ``textcls``: an embedding + masked mean pooling classifier training step on
  ``(token_ids, lengths, labels)``.
"""

from __future__ import annotations

from typing import Any

from feedbench.pipelines.core.stats import LoaderStats


class Workload:
    """The interface of a workload; subclass it and implement :meth:`step`.

    Attributes:
        name: How results name the workload.
        warmup_steps: Steps :meth:`warmup` runs on the first batch before measuring.
    """

    name = "workload"
    warmup_steps = 3

    def bind(self, stats: LoaderStats) -> None:
        """Called by ``measure`` before :meth:`setup` with what the loader reports of itself
        (``stats_of(loader)``); by default does nothing.

        A workload that must be sized to its data reads what it needs here (the textcls
        workload reads ``stats.vocab_size`` and ``stats.num_classes`` when known) rather than
        guessing from a batch.
        """

    def setup(self, device: Any) -> None:
        """Prepares to run on `device` (a ``torch.device``): build models, calibrate."""
        self.device = device

    def timeline(self) -> Any | None:
        """The timeline of the device the steps run on, where it is not CUDA's and runs apart
        from the host (the CPU's emulated device); None by default.

        Such a timeline has ``event()`` (a new event, with ``synchronize()`` and
        ``elapsed_time(end)`` in ms, recorded after the work launched so far) and
        ``synchronize()``; the loop then times the device by its events, as on CUDA.
        """
        return None

    def close(self) -> None:
        """Releases what :meth:`setup` started (the loop calls it when the run ends)."""

    def warmup(self, batch: Any) -> None:
        """Runs `warmup_steps` unmeasured steps on `batch` (on the device)."""
        for _ in range(self.warmup_steps):
            self.step(batch)

    def step(self, batch: Any) -> None:
        """One step on `batch` (already on the device). May return before the device is done."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name
