"""The Ray session helpers of the ray backends, without a Ray instance: Ray Data is found (or
missing, in one line), an address is checked before Ray is asked to join it (one line naming it,
within seconds), the consumer's wait checks the cluster, Ray is kept off the terminal. Sessions
themselves run in tests/vision/test_ray.py and tests/text/test_ray.py."""

import logging
import queue
import socket
import sys
import time

import pytest

from feedbench.pipelines.core import ray_cluster
from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.core.ray_loader import from_columns, made_ahead, prefetch_batches, task_count, to_columns


def _free_port():
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def listening():
    """An address something accepts connections at (a socket that never answers further)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_ray_data_is_installed_here_and_its_absence_is_one_line(monkeypatch):
    assert ray_cluster.ray_installed() is None
    monkeypatch.setitem(sys.modules, "ray.data", None)  # as if not installed
    with pytest.raises(ConfigError) as info:
        ray_cluster.ray_installed()
    assert str(info.value) == "the ray backend needs Ray Data: pip install 'feedbench[ray]'"


def test_an_address_nobody_answers_at_is_one_line_naming_it_within_seconds():
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        ray_cluster.check_address(address)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert message.startswith(f"the Ray cluster at {address} cannot be reached") and "\n" not in message
    with pytest.raises(ConfigError, match="ray_address 'http://x:1': the scheme must be ray://"):
        ray_cluster.check_address("http://x:1")
    ray_cluster.check_address("")  # a local instance: nothing to check


def test_an_address_that_answers_passes(listening):
    ray_cluster.check_address(listening)
    ray_cluster.check_address("ray://" + listening)
    assert ray_cluster.unreachable(listening) is None
    assert ray_cluster.unreachable(f"127.0.0.1:{_free_port()}") == "Connection refused"


def test_the_wait_for_a_batch_checks_the_cluster(listening):
    answers = iter([queue.Empty(), queue.Empty(), "batch"])

    def wait(timeout_s):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert ray_cluster.watch(listening, wait, every_s=0.01) == "batch"  # still there: waits on
    gone = f"127.0.0.1:{_free_port()}"

    def nothing(timeout_s):
        raise queue.Empty

    with pytest.raises(DatasetError) as info:
        ray_cluster.watch(gone, nothing, every_s=0.01)
    assert str(info.value) == f"the Ray cluster at {gone} stopped answering (Connection refused)"
    answers = iter([queue.Empty(), "batch"])
    assert ray_cluster.watch("", wait, every_s=0.01) == "batch"  # a local instance is not probed


def test_ray_is_kept_off_the_terminal():
    ray_cluster.quiet()
    from ray.data import DataContext

    context = DataContext.get_current()
    assert logging.getLogger("ray").getEffectiveLevel() == logging.CRITICAL
    assert not context.enable_progress_bars and not context.print_on_execution_start
    consoles = [h for h in logging.getLogger("ray.data").handlers
                if type(h).__module__.startswith("ray.") and type(h).__name__ != "SessionFileHandler"]
    assert consoles and all(h.level == logging.CRITICAL for h in consoles)


def test_an_error_raised_from_another_is_found_by_its_class_name():
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ConnectionError("outer") from exc
    except ConnectionError as exc:
        outer = exc
    assert ray_cluster._caused_by(outer, "KeyError") and not ray_cluster._caused_by(outer, "ValueError")


def test_workers_and_prefetch_become_tasks_and_prefetch_batches():
    assert (task_count(0), task_count(3)) == (1, 3)  # a Ray Data stage cannot run without a task
    assert task_count("autotune") >= 1
    assert (prefetch_batches(0), prefetch_batches(5), prefetch_batches("autotune")) == (0, 5, 2)


def test_what_is_made_ahead_is_what_ray_datas_share_of_the_store_holds():
    """Measured on a local instance (1 GiB store, 2 workers, the consumer holding its first
    batch; ray_loader's float batches of 448 px x 16 and x 32, 224 px x 32): 14, 12 at prefetch
    0, 7, the whole pass. The estimate is at most a batch or two above."""
    store = 1 << 30
    assert made_ahead(32, 38_535_296, 2, store) == 15
    assert made_ahead(32, 38_535_296, 0, store) == 13
    assert made_ahead(16, 77_070_592, 2, store) == 8
    assert made_ahead(16, 19_267_840, 2, store) == 16  # a pass at most


def test_a_batch_crosses_as_columns_and_comes_back_the_same():
    import numpy as np
    import torch

    batch = (torch.arange(12, dtype=torch.float32).reshape(2, 2, 3), np.array([3, 4]), ["a.jpg: empty file"])
    columns = to_columns(batch)
    assert sorted(columns) == ["a1", "p2", "t0"] and columns["t0"].shape == (1, 2, 2, 3)
    read_only = {name: np.array(column) for name, column in columns.items()}
    for column in read_only.values():
        column.flags.writeable = False  # as Ray's object store hands it out
    images, labels, problems = from_columns(read_only)
    assert torch.equal(images, batch[0]) and images.dtype == torch.float32
    assert np.array_equal(labels, batch[1]) and problems == batch[2]
    images += 1  # writable, as a DataLoader's batch is
