"""Fixtures shared by the grid and results-folder tests."""

import contextlib
import pickle
import subprocess
import sys

import pytest

from feedbench.pipelines import RunResult
from feedbench.pipelines.harness import grid
from feedbench.pipelines.harness.plan import Cell, Settings
from feedbench.pipelines.loop.config import MeasureConfig

TINY = {"batch_size": 4, "image_size": 32}


@pytest.fixture
def settings(small_folder):
    """Grid settings for the small image folder: tiny images, 5 steps, a 5 ms emulated step."""
    return Settings(task="image", data=small_folder.root,
                    measure=MeasureConfig(workload="emulated:5ms", device="cpu", steps=5), options=TINY)


def _fake_row(settings, framework, workers, rate=100.0, ok=True, contention=0.0):
    result = RunResult(samples_per_s=rate, batches_per_s=rate / 4, starvation=0.5, accelerator_utilization=0.5,
                       steps=5, window_s=1.0, contention=contention) if ok else RunResult.failed("RuntimeError: boom")
    return grid.make_row(settings, Cell(framework, workers), result, command="test", started_at="t", wall_s=1.0)


@pytest.fixture
def fake_row():
    """``fake_row(settings, framework, workers, rate=100.0, ok=True, contention=0.0)``: a results row
    without a run."""
    return _fake_row


@contextlib.contextmanager
def _held_elsewhere(out, settings):
    holder = (
        "import pickle, sys\n"
        "from feedbench.pipelines.harness.store import ResultStore\n"
        f"settings = pickle.loads({pickle.dumps(settings)!r})\n"
        f"with ResultStore.open({str(out)!r}, settings, resume=True):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def held_elsewhere():
    """``with held_elsewhere(out, settings):`` another process holds the results folder `out`
    (as a grid measuring into it does) until the block ends."""
    return _held_elsewhere
