"""Fault cases: the pytest fixture ``loader_benchmark`` given loaders that are not what it
expects. Each is one line naming what is wrong (a FeedbenchError), within a time bound: never
a traceback from deep inside the loop, never a wait for a default timeout of minutes."""

import threading

import pytest
import torch

from feedbench.pipelines.core.errors import FeedbenchError, described


class _Stalls:
    """Yields one batch, then waits (for an event that the test sets when done)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __iter__(self):
        yield torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)
        self.release.wait(60)


class _RaisesOnIter:
    def __iter__(self):
        raise OSError("the storage went away")


def _one_shot():
    return (batch for batch in [(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64))] * 3)


ODD = {
    "an empty list": (lambda: [], "no batch"),
    "None": (lambda: None, "got NoneType"),
    "batches of None": (lambda: [None] * 4, "batch"),
    "batches of text": (lambda: ["abc"] * 4, "batch"),
    "a loader that raises when iterated": (_RaisesOnIter, "the storage went away"),
    "an empty tensor batch": (lambda: [(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))] * 4, "no samples"),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_an_odd_loader_is_one_line(fault, loader_benchmark, case):
    make, words = ODD[case]
    with fault.within(60):
        try:
            loader_benchmark(make(), workload="emulated:1ms", device="cpu", steps=8, warmup=1, timeout=5)
        except FeedbenchError as exc:
            line = fault.one_line(described(exc))
            assert words in line, line
        except Exception as exc:  # noqa: BLE001
            fault.broke("tracebacks", f"{type(exc).__name__} escaped: {described(exc)}")
        else:
            fault.broke("silent drops", f"{case} was measured as if it were a loader")


def test_a_loader_that_stalls_fails_at_its_timeout(fault, loader_benchmark):
    loader = _Stalls()
    try:
        with fault.within(30):
            with pytest.raises(FeedbenchError) as info:
                loader_benchmark(loader, workload="emulated:1ms", device="cpu", steps=4, warmup=1, timeout=2)
    finally:
        loader.release.set()
    assert "no batch from the loader after 2 s" in fault.one_line(described(info.value))


def test_a_one_shot_generator_is_measured_as_far_as_it_goes_and_says_so(fault, loader_benchmark, caplog):
    with fault.within(60):
        result = loader_benchmark(_one_shot(), workload="emulated:1ms", device="cpu", steps=8, warmup=1, timeout=5)
    assert result.stop_reason == "exhausted" and result.steps == 2
    assert "the loader ended after 2 measured steps; it is not re-iterable" in caplog.text
