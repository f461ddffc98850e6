"""An accelerator emulated on the CPU: a device thread that runs the steps launched onto it,
in order, while the host goes on, with events on its timeline as a CUDA stream has them.

The emulated workload on the CPU launches each step here (``emulated:<t>``), so that the
consumer loop meets the same asynchronous device it meets on CUDA: the host launches a step
and fetches the next batch while the device works, at most two steps in flight (the loop
holds that bound, as on CUDA). Starvation is the device's idle time, AU its busy time.

The device keeps its own clock. Each piece of work it is given becomes ready when the host
launched it; it starts when it is ready and the device is free, and a step of t seconds ends t
later, exactly: the thread sleeps until then, but a late wake-up of the thread (another
process on the CPU) does not stretch the step, since the next starts at the previous one's
end, as on a real device. So the timeline measures the loop, not the thread's scheduling.
"""

from __future__ import annotations

import queue
import threading
import time


class DeviceEvent:
    """A mark on the timeline, like ``torch.cuda.Event(enable_timing=True)``: it takes the
    device's time when the device reaches it (when the work launched before it has ended)."""

    __slots__ = ("_device", "_number", "time")

    def __init__(self, device: EmulatedDevice, number: int) -> None:
        self._device, self._number = device, number
        self.time: float | None = None  # perf_counter seconds, once reached

    def synchronize(self) -> None:
        """Waits until the device has reached this event."""
        self._device._wait_for(self._number)

    def query(self) -> bool:
        return self._device._reached >= self._number

    def elapsed_time(self, end: DeviceEvent) -> float:
        """Milliseconds from this event to `end` (both reached), as CUDA events give it."""
        return (end.time - self.time) * 1e3


class EmulatedDevice:
    """A device that runs launched work one piece at a time, in launch order, on its own thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._free_at = 0.0  # the device's clock: when the work launched so far ends
        self._marks = 0  # events recorded so far (host side)
        self._reached = 0  # events the device has reached
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="feedbench-emulated-device", daemon=True)
        self._thread.start()

    def launch(self, seconds: float) -> None:
        """Queues `seconds` of device work and returns at once."""
        self._queue.put(("busy", time.perf_counter(), seconds))

    def event(self) -> DeviceEvent:
        """A new event recorded on the timeline now (after the work launched so far)."""
        self._marks += 1
        event = DeviceEvent(self, self._marks)
        self._queue.put(("mark", time.perf_counter(), event))
        return event

    def synchronize(self) -> None:
        """Waits until the device has done all the work launched so far."""
        self.event().synchronize()

    def close(self) -> None:
        """Ends the device thread after the work launched so far."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _wait_for(self, number: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._reached >= number)

    def _run(self) -> None:
        # No spin at the end of a sleep: the device's clock, not the thread's wake-up, times the
        # work, and a spinning thread would hold the GIL that the host needs.
        while (item := self._queue.get()) is not None:
            kind, ready, value = item
            start = max(ready, self._free_at)
            if kind == "busy":
                self._free_at = start + value
                _sleep_until(self._free_at)
            else:
                value.time = start
                _sleep_until(start)
                with self._changed:
                    self._reached = value._number
                    self._changed.notify_all()


def _sleep_until(deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left > 0:
        time.sleep(left)
