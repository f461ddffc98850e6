"""The Ray session helpers of the ray backends, without a Ray instance: Ray Data is found (or
missing, in one line), an address is checked before Ray is asked to join it (one line naming it,
within seconds), the consumer's wait checks the cluster, Ray is kept off the terminal. Sessions
themselves run in tests/vision/test_ray.py and tests/text/test_ray.py."""

import logging
import queue
import socket
import sys
import threading
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


class _Worker:
    """A background worker as Ray Data's block prefetcher is one: its thread runs a method of it
    (of a module of Ray Data's, here by name) and waits for work until ``stop()``."""

    def __init__(self, name, module="ray.data._internal.block_batching.util"):
        self.stopped = threading.Event()
        self.run.__func__.__module__ = module
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.thread.start()

    def run(self):
        self.stopped.wait()

    def stop(self):
        self.stopped.set()


def test_settle_stops_and_waits_for_ray_datas_threads_but_not_its_usage_poller():
    """Ray ends a process whose thread calls it after ray.shutdown(): the session's end first
    stops (a prefetcher of a pass left mid-way waits for work for ever) and waits for Ray
    Data's threads; not for the usage poller, which never ends and calls Ray no more."""
    prefetcher, poller = _Worker("Prefetcher"), _Worker(ray_cluster.USAGE_POLLER)
    try:
        found = ray_cluster.ray_data_threads()
        assert prefetcher.thread in found and poller.thread not in found
        started = time.monotonic()
        ray_cluster.settle(timeout_s=5)
        assert not prefetcher.thread.is_alive() and time.monotonic() - started < 2
        assert poller.thread.is_alive()  # neither stopped nor waited for
        assert prefetcher.thread not in ray_cluster.ray_data_threads()
    finally:
        prefetcher.stop()
        poller.stop()


def test_settle_called_from_one_of_ray_datas_threads_does_not_wait_for_itself():
    errors = []

    def from_inside():
        try:
            ray_cluster.settle(timeout_s=5)
        except Exception as exc:  # noqa: BLE001 - recorded for the test's assertion
            errors.append(exc)

    from_inside.__module__ = "ray.data._internal.execution.streaming_executor"
    inside = threading.Thread(target=from_inside, name="StreamingExecutor-test", daemon=True)
    started = time.monotonic()
    inside.start()
    inside.join(10)
    assert not inside.is_alive() and not errors and time.monotonic() - started < 2
