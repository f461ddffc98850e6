"""ray (image): the torch pipeline with Ray Data making the batches gives the DataLoader's very
batches (eval; train too, its draws being per sample), in a later epoch too, made in the worker
processes of the first; names or skips and counts bad images as the DataLoader does; a task
that raises or kills its worker ends the pass in one line; it reports its tasks. A local Ray
instance is shared by the loaders of a process and ends, with every process it started, with
the last of them, in this process and in an isolated measured run; a cluster's address is joined
and left running; an address nobody answers at is one line within seconds; a cluster that dies
mid-run ends the run with one line naming it.

Ray takes seconds to start, and its task workers seconds to import torch the first time (Ray
keeps them for later passes): the loaders here share one local instance (`local_ray`), tiny
images. The cluster tests drive their loaders in spawned processes: Ray ends a driver whose
cluster died, and this process is in a local session (one per process)."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from queue import Empty, SimpleQueue

import numpy as np
import psutil
import pytest
import torch

from feedbench.pipelines import ConfigError, DatasetError, MeasureConfig, RunSpec, registry, run_isolated
from feedbench.pipelines.core import ray_cluster
from feedbench.pipelines.core.errors import LoaderError
from feedbench.pipelines.core.ray_loader import RayLoader
from feedbench.vision import torch_loader
from feedbench.vision._common import RayImageConfig
from feedbench.vision.ray_pipeline import batch_bytes, build_ray_prefix, ray_loader

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
TINY = dict(batch_size=5, image_size=24)


def _is_ray(process):
    name = process.name()
    return name in ("gcs_server", "raylet") or name.startswith("ray::") or \
        any(f"{os.sep}ray{os.sep}" in part for part in process.cmdline()[:3])


def _ray_processes(processes):
    """The live Ray processes among `processes` (GCS, raylet, agents, workers)."""
    found = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE and _is_ray(process):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _left(processes, timeout_s=15.0):
    """Those of `processes` still alive after up to `timeout_s` (a worker notices its raylet's end
    within a second or two); a zombie is not alive (nothing here reaps what init inherits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = _ray_processes(p for p in processes if p.is_running())
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _own_ray():
    return _ray_processes(psutil.Process().children(recursive=True))


def _task_workers():
    """This process's Ray workers started for the loader's tasks: those with OMP_NUM_THREADS=1,
    which only the tasks' runtime environment sets (the instance runs with 2)."""
    found = []
    for process in _own_ray():
        try:
            if process.name().startswith("ray::") and process.environ().get("OMP_NUM_THREADS") == "1":
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def authenticated():
    """A token of the tests' own for Ray's token authentication (on by default in Ray 2.60), so
    that no session writes one into the home folder; spawned runs and the heads inherit it. One
    token for the whole test process: Ray reads it once, and a local instance started after the
    token changed never came up ("Failed to start GCS", after 20 s)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "token")
    patch.setenv("RAY_AUTH_TOKEN", hashlib.sha256(f"feedbench tests {os.getpid()}".encode()).hexdigest())
    yield
    patch.undo()


class _Held:
    """The module's hold on the process's local Ray instance, let go once."""

    def __init__(self) -> None:
        ray_cluster.join("", 2)
        self.gcs = [p.pid for p in _own_ray() if p.name() == "gcs_server"]
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            ray_cluster.leave("")


@pytest.fixture(scope="module")
def local_ray(authenticated):
    """One local Ray instance (2 CPUs) that the module's loaders join, held until the module ends;
    started with OMP_NUM_THREADS=2 in its environment, as an isolated run of 2 CPUs has it."""
    patch = pytest.MonkeyPatch()
    patch.setenv("OMP_NUM_THREADS", "2")
    held = _Held()
    yield held
    held.release()
    patch.undo()


def _epoch(loader):
    return [(images.clone(), labels.clone()) for images, labels in loader]


def _same(one, other):
    assert len(one) == len(other)
    for (images_a, labels_a), (images_b, labels_b) in zip(one, other):
        assert images_a.dtype == images_b.dtype and torch.equal(images_a, images_b)
        assert torch.equal(labels_a, labels_b)


@pytest.mark.parametrize(("kind", "train", "output", "workers"),
                         [("folder", False, "float", 3), ("shards", True, "uint8", 1)])
def test_the_batches_are_the_dataloaders(local_ray, small_folder, small_shards, kind, train, output, workers):
    """Three tasks at once on the instance's 2 CPUs: the third waits for one."""
    root = small_folder.root if kind == "folder" else small_shards.root
    keywords = dict(TINY, train=train, shuffle=train, seed=7, output=output)
    loader = ray_loader(root, workers=workers, **keywords)
    batches = iter(loader)
    mine = [tuple(t.clone() for t in next(batches))]
    # One intra-op thread per task's worker, as a DataLoader worker: two workers of the run's
    # two threads each (OMP_NUM_THREADS, which Ray passes on) made batches 10x slower on 2 CPUs.
    # Between tasks a worker is "ray::IDLE"; at most one per CPU runs.
    makers = _task_workers()
    assert 1 <= len(makers) <= 2, [p.name() for p in _own_ray()]
    assert all(p.name() == "ray::IDLE" or p.name().startswith("ray::MapBatches(") for p in makers)
    mine += _epoch(batches)
    assert len(mine) == len(loader) == (4 if train else 5)  # train drops the last short batch
    _same(mine, _epoch(torch_loader(root, workers=0, **keywords)))
    assert sum(t.nbytes for t in mine[0]) == batch_bytes(loader.config)  # what batches_ahead counts
    loader.close()


def test_a_later_epoch_runs_in_the_worker_processes_of_the_first(local_ray, small_folder):
    keywords = dict(TINY, train=True, seed=3)
    loader, theirs = ray_loader(small_folder.root, workers=2, **keywords), torch_loader(small_folder.root, **keywords)
    first = _epoch(loader)
    running = {p.pid for p in _own_ray()}
    assert _task_workers()
    second = _epoch(loader)
    started = [p.name() for p in _own_ray() if p.pid not in running]
    assert not started, f"the second epoch started Ray processes: {started}"
    _same(first, _epoch(theirs))
    _same(second, _epoch(theirs))
    assert not torch.equal(first[0][0], second[0][0])  # a new epoch's draws
    loader.close()


def _within(timeout_s, work):
    """What `work()` returned or raised, or pytest.fail after `timeout_s` (work left running)."""
    answer = SimpleQueue()

    def run():
        try:
            answer.put((True, work()))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            answer.put((False, exc))

    threading.Thread(target=run, daemon=True).start()
    try:
        done, value = answer.get(timeout=timeout_s)
    except Empty:
        pytest.fail(f"no answer within {timeout_s} s")
    if not done:
        raise value
    return value


def test_a_task_that_raises_or_kills_its_worker_ends_the_pass_in_one_line(local_ray):
    """Made of what any worker unpickles: a dict for the dataset, tuple or sys.exit for collate
    (sys.exit(batch) ends the worker process). Not made again: a worker's death is not retried."""
    samples = {key: torch.tensor([key]) for key in range(4)}
    loader = RayLoader(samples, [[0], [99]], tuple, 1, 0, "", 8)
    with pytest.raises(LoaderError) as info:
        _within(60, lambda: list(loader))
    loader.close()
    assert str(info.value) == "a Ray task making batches raised KeyError: 99"
    loader = RayLoader(samples, [[0], [1]], sys.exit, 1, 0, "", 8)
    with pytest.raises(LoaderError) as info:
        _within(60, lambda: list(loader))
    loader.close()
    assert str(info.value).startswith("the worker of a Ray task making batches in the local Ray instance died "
                                      "(WorkerCrashedError: ") and "\n" not in str(info.value)


def test_bad_images_are_named_or_skipped_and_counted_as_the_dataloader_does(local_ray, broken_folder):
    root, bad = broken_folder
    keywords = dict(TINY, train=False, shuffle=False, batch_size=4, workers=1)
    loader = ray_loader(root, **keywords)
    with pytest.raises(DatasetError) as info:
        list(loader)
    loader.close()  # else it holds its share of the instance until the collector finds it
    message = str(info.value)
    assert "\n" not in message and any(name in message for name in bad)
    loader, theirs = ray_loader(root, on_error="skip", **keywords), torch_loader(root, on_error="skip", **keywords)
    mine = _epoch(loader)
    assert sum(len(labels) for _, labels in mine) == 24
    _same(mine, _epoch(theirs))
    assert loader.skipped == theirs.skipped == len(bad) == loader.loader_stats().skipped
    loader.close()


def test_it_reports_its_tasks_and_what_it_makes_ahead(small_folder):
    """Read from the config: no Ray session needed."""
    loader = ray_loader(small_folder.root, workers=3, prefetch=2, **TINY)
    stats = loader.loader_stats()
    assert dict(stats.threads) == {"Ray tasks making batches": 3, "intra-op per Ray task": 1}
    assert stats.num_classes == 3
    assert stats.batches_ahead == len(loader) == 4  # batches of 35 KB: Ray Data makes the whole pass ahead
    assert loader.num_workers == 3 and loader.prefetch == 2 and loader.address == ""
    assert batch_bytes(RayImageConfig(batch_size=64)) == 64 * (3 * 224 * 224 * 4 + 8)
    eval_ = ray_loader(small_folder.root, train=False, workers=0, prefetch=0, **TINY)
    assert eval_.num_workers == 1 and eval_.loader_stats().batches_ahead == len(eval_) == 5
    autotuned = ray_loader(small_folder.root, workers="autotune", prefetch="autotune")
    assert autotuned.num_workers == len(os.sched_getaffinity(0)) and autotuned.prefetch == 2


def test_the_instance_is_shared_and_ends_with_its_last_user(local_ray, small_folder):
    """Last in the module: it lets the module's hold on the instance go, with a pass left mid-way
    (Ray Data's threads end before Ray does). (A prefix pipeline is
    the loader over the torch prefix's dataset: its passes are tests/text/test_ray.py's.)"""
    prefix = build_ray_prefix(small_folder.root, RayImageConfig(workers=1, train=False, **TINY), "decode")
    assert prefix.dataset.through == "decode" and len(prefix) == 5
    assert [p.pid for p in _own_ray() if p.name() == "gcs_server"] == local_ray.gcs  # every loader joined it
    with pytest.raises(ConfigError) as info:  # Ray allows one session per process
        ray_cluster.join("127.0.0.1:1", 1)
    assert "already in the local Ray instance" in str(info.value) and "\n" not in str(info.value)
    left_midway = ray_loader(small_folder.root, workers=2, train=False, **TINY)
    for _ in zip(range(2), left_midway):  # a pass left before its end, as a measured window's last
        pass
    running = _own_ray()
    assert {"gcs_server", "raylet"} <= {p.name() for p in running}
    assert "Prefetcher" in {thread.name for thread in ray_cluster.ray_data_threads()}  # what is waited for
    left_midway.close()
    local_ray.release()
    # Ray ends a process whose thread calls it after ray.shutdown(): none of Ray Data's may be left
    # (a block prefetcher of a pass left mid-way waited for work for ever; an isolated run was ended
    # before it reported)
    assert not ray_cluster.ray_data_threads()
    assert not _left(running), "the local Ray instance left processes behind"
    assert not _own_ray()


def test_an_isolated_run_measures_and_leaves_no_ray_process(authenticated, small_folder):
    before = {p.pid for p in _ray_processes(psutil.process_iter())}
    config = RayImageConfig(train=False, shuffle=False, batch_size=4, image_size=24, workers=1)
    spec = RunSpec(registry.loader_factory("image", "ray", small_folder.root, config),
                   MeasureConfig(workload="emulated:1ms", device="cpu", steps=4, warmup=1, cpus=2))
    result = run_isolated(spec)  # 6 batches an epoch: one pass
    assert result.ok, result.error
    assert result.steps == 4 and result.samples == 16 and result.epochs == 1 and result.skipped == 0
    assert 0 < result.samples_per_s and 0 < result.ttfb_s < 120
    assert result.config["threads"] == {"Ray tasks making batches": 1, "intra-op per Ray task": 1}
    new = [p for p in _ray_processes(psutil.process_iter()) if p.pid not in before]
    assert not _left(new), "an isolated run left Ray processes behind"


# A user's script that leaves a pass open and its loader unclosed: it must still exit 0.
_LEFT_OPEN = """
import sys
from feedbench.vision.ray_pipeline import ray_loader
if __name__ == "__main__":
    loader = ray_loader(sys.argv[1], workers=2, train=False, batch_size=5, image_size=24)
    batches = iter(loader)
    next(batches)
    images, labels = next(batches)
    print("measured", tuple(images.shape))
"""


def test_a_script_that_leaves_its_loader_open_exits_0_and_leaves_no_ray_process(authenticated, small_folder,
                                                                               tmp_path):
    """At exit the pass ends, then the session, then Ray's own exit hook runs (Ray ends a process
    whose thread calls it after it shut down: exit status 1)."""
    script = tmp_path / "left_open.py"
    script.write_text(_LEFT_OPEN)
    before = {p.pid for p in _ray_processes(psutil.process_iter())}
    done = subprocess.run([sys.executable, str(script), str(small_folder.root)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "measured (5, 3, 24, 24)"
    new = [p for p in _ray_processes(psutil.process_iter()) if p.pid not in before]
    assert not _left(new), "the script left Ray processes behind"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def ray_head(authenticated):
    """A Ray cluster of one node (2 CPUs) started with ``ray start --head`` in a session of its
    own: (its address, its process). Killed with its whole process group at the end; nothing of
    it may be left. (Never ``ray stop``: it would end every Ray instance of the machine.)"""
    port = _free_port()
    head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard",
                             "false", "--disable-usage-stats", "--block"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while ray_cluster.unreachable(f"127.0.0.1:{port}"):
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", head
    finally:
        group = [p for p in psutil.process_iter() if _session_of(p) == head.pid]
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        assert not _left(group), "the head left processes behind"


def _session_of(process):
    try:
        return os.getsid(process.pid)
    except OSError:
        return None


# One epoch over a cluster, in a process of its own, saved as NumPy arrays.
_OVER_THE_CLUSTER = """
import sys, numpy as np
from feedbench.vision.ray_pipeline import ray_loader
if __name__ == "__main__":
    address, root, out = sys.argv[1:]
    loader = ray_loader(root, ray_address=address, train=False, shuffle=False, batch_size=5, image_size=24, workers=1)
    batches = [(images.numpy(), labels.numpy()) for images, labels in loader]
    loader.close()
    np.savez(out, *[array for batch in batches for array in batch])
"""


def test_a_cluster_is_joined_and_left_running(ray_head, small_folder, tmp_path):
    address, head = ray_head
    out = tmp_path / "epoch.npz"
    done = subprocess.run([sys.executable, "-c", _OVER_THE_CLUSTER, address, str(small_folder.root), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and not done.stdout and not done.stderr.strip(), done.stderr[-3000:]
    with np.load(out) as saved:
        arrays = [torch.from_numpy(saved[f"arr_{i}"]) for i in range(len(saved.files))]
    theirs = _epoch(torch_loader(small_folder.root, train=False, shuffle=False, workers=0, **TINY))
    _same(list(zip(arrays[::2], arrays[1::2])), theirs)
    assert head.poll() is None and any(p.name() == "gcs_server" for p in psutil.process_iter()
                                       if _session_of(p) == head.pid), "closing the loader ended the cluster"


def test_an_address_nobody_answers_at_is_one_line_within_seconds(small_folder):
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        ray_loader(small_folder.root, ray_address=address)
    assert time.monotonic() - started < 10
    assert str(info.value).startswith(f"the Ray cluster at {address} cannot be reached (")
    assert "\n" not in str(info.value)


def test_a_cluster_that_dies_mid_run_ends_the_run_naming_it(ray_head, small_folder):
    """The head is killed while the run's first task runs (its worker imports torch: seconds), so
    that the loop is waiting for a batch; the run ends with the loader's error, one line naming the address.
    (Ray ends a driver at once when one of its own calls finds its raylet gone: a kill timed
    while Ray moves a batch can end the run's process instead, with exit status 1.)"""
    address, head = ray_head

    def kill_when_the_task_starts():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.name().startswith("ray::MapBatches(") for p in psutil.process_iter()
                   if _session_of(p) == head.pid):
                time.sleep(0.5)
                os.killpg(head.pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_the_task_starts, daemon=True)
    killer.start()
    config = RayImageConfig(train=False, shuffle=False, batch_size=4, image_size=24, workers=1, ray_address=address)
    result = run_isolated(RunSpec(registry.loader_factory("image", "ray", small_folder.root, config),
                                  MeasureConfig(workload="emulated:1ms", device="cpu", steps=50, warmup=1, cpus=2,
                                                timeout=60, limit_s=240)))
    killer.join()
    assert not result.ok and head.poll() is not None
    assert "\n" not in result.error and f"the Ray cluster at {address} stopped answering" in result.error, \
        result.error
