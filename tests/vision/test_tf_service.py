"""tf-service (image and text): the tf.data pipelines with their preprocessing on a real tf.data
service started here (a local one of the loader's own, or one started as another process and
given by address), against the local tf.data pipelines; every process the service started ends;
a service that cannot be reached or dies mid-run is an error naming it, not a hang."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from feedbench.pipelines import measure
from feedbench.pipelines.core.errors import ConfigError, DatasetError, LoaderError
from feedbench.text import tf_dataset as text_tf_dataset
from feedbench.text.tf_service import service_dataset as text_service_dataset
from feedbench.vision import tf_dataset
from feedbench.vision.tf_service import service_dataset

EVAL = dict(train=False, shuffle=False, batch_size=5, image_size=24)
TEXT = dict(tokenizer="regex", shuffle=False, batch_size=8, bucket=False)


def _arrays(loader):
    return [[np.asarray(part) for part in batch] for batch in loader]


def _same(one, other):
    assert len(one) == len(other)
    for a, b in zip(one, other):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def _workers_of(pid):
    """The service worker processes `pid` started (and still running)."""
    return [p for p in psutil.Process(pid).children(recursive=True)
            if "feedbench.pipelines.core.tf_service" in " ".join(p.cmdline())]


def _serve(tmp):
    """`python -m feedbench.pipelines.core.tf_service serve` of one worker, as `feedbench service`
    runs one, in a session of its own, its temporary files (the workers' logs) under `tmp`."""
    return subprocess.Popen([sys.executable, "-m", "feedbench.pipelines.core.tf_service", "serve", "--workers", "1"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp)})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A service of its own process: (its address, the process). Stopped as a user stops it
    (SIGTERM), it ends its workers and removes its logs."""
    tmp = tmp_path_factory.mktemp("served")
    process = _serve(tmp)
    try:
        line = process.stdout.readline()
        address = re.search(r"grpc://\S+", line).group(0)
        workers = _workers_of(process.pid)
        assert list(tmp.glob("feedbench-tf-service-*/worker-0.log")) and len(workers) == 1
        yield address, process
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    assert process.returncode == 0 and not list(tmp.iterdir())
    assert not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers)


def test_the_eval_batches_are_tf_datas_and_the_local_service_ends(small_folder):
    """One local worker deals the files in order: the same bytes as tf.data's pipeline, epoch
    after epoch (each a new job); closing ends the worker."""
    loader = service_dataset(small_folder.root, workers=1, **EVAL)
    expected = _arrays(tf_dataset(small_folder.root, workers=0, **EVAL))
    _same(_arrays(loader), expected)
    workers = _workers_of(os.getpid())
    assert len(workers) == 1
    _same(_arrays(loader), expected)
    stats = loader.loader_stats()
    assert stats.threads[0] == ("tf.data service workers", 1)
    assert stats.num_classes == len(small_folder.extra["classes"])
    loader.close()
    psutil.wait_procs(workers, timeout=10)
    assert not _workers_of(os.getpid())


def test_each_epoch_draws_its_own_order_and_crops_the_same_for_the_same_seed(small_folder, text_corpus):
    """Each epoch is a new job, whose graph starts its seeded streams anew: epochs are seeded in
    turn, so a loader's second epoch is not its first again (order, crops and flips), while a
    loader of the same seed repeats both; every image still comes once an epoch."""
    train = dict(train=True, shuffle=True, batch_size=5, image_size=24, workers=1, seed=3, drop_last=False)
    one, again = service_dataset(small_folder.root, **train), service_dataset(small_folder.root, **train)
    first, second = _arrays(one), _arrays(one)
    _same(_arrays(again), first)
    _same(_arrays(again), second)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, second))
    every = sorted(np.concatenate([labels for _, labels in _arrays(tf_dataset(small_folder.root, **EVAL))]).tolist())
    for epoch in (first, second):
        assert sorted(np.concatenate([labels for _, labels in epoch]).tolist()) == every
    text = dict(TEXT, shuffle=True, seed=3, workers=1)
    words, more = text_service_dataset(text_corpus.root, **text), text_service_dataset(text_corpus.root, **text)
    first, second = _arrays(words), _arrays(words)
    _same(_arrays(more), first)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, second))
    for loader in (one, again, words, more):
        loader.close()
    assert not _workers_of(os.getpid())


def test_distributed_epoch_makes_each_image_once_parallel_epochs_once_per_worker(small_folder):
    """Two workers: under "distributed_epoch" each image comes once an epoch (in no fixed order);
    under "parallel_epochs" every worker makes the whole epoch."""
    expected = sorted(float(image.sum()) for batch in _arrays(tf_dataset(small_folder.root, workers=0, **EVAL))
                      for image in batch[0])
    loader = service_dataset(small_folder.root, workers=2, **EVAL)
    got = sorted(float(image.sum()) for batch in _arrays(loader) for image in batch[0])
    assert len(_workers_of(os.getpid())) == 2
    assert np.allclose(got, expected, rtol=0, atol=1e-3)
    loader.close()
    copies = service_dataset(small_folder.root, workers=2, processing_mode="parallel_epochs", **EVAL)
    got = sorted(float(image.sum()) for batch in _arrays(copies) for image in batch[0])
    assert np.allclose(got, sorted(expected * 2), rtol=0, atol=1e-3)
    copies.close()
    assert not _workers_of(os.getpid())


def test_an_existing_service_is_used_and_left_running(served, small_folder, text_corpus):
    address, process = served
    loader = service_dataset(small_folder.root, workers=3, service=address, **EVAL)
    _same(_arrays(loader), _arrays(tf_dataset(small_folder.root, workers=0, **EVAL)))
    assert loader.loader_stats().threads[0] == ("tf.data service workers", "remote")
    text = text_service_dataset(text_corpus.root, service=address, **TEXT)
    _same(_arrays(text), _arrays(text_tf_dataset(text_corpus.root, workers=0, **TEXT)))
    loader.close()
    text.close()
    assert process.poll() is None and _workers_of(process.pid)


def test_what_the_service_cannot_run_is_refused_in_one_line(small_shards, small_folder, text_corpus):
    with pytest.raises(ConfigError, match=r"cannot read Parquet shards .*give an ImageFolder"):
        service_dataset(small_shards.root, **EVAL)
    with pytest.raises(ConfigError, match=r"tokenizer 'spacy'.*use the regex tokenizer"):
        text_service_dataset(text_corpus.root, tokenizer="spacy")
    with pytest.raises(ConfigError, match=r"processing_mode must be one of"):
        service_dataset(small_folder.root, processing_mode="once")


def test_an_unreachable_service_is_an_error_naming_it(small_folder):
    with socket_port() as port:
        loader = service_dataset(small_folder.root, service=f"grpc://127.0.0.1:{port}", **EVAL)
        started = time.monotonic()
        with pytest.raises(ConfigError, match=rf"dispatcher at grpc://127.0.0.1:{port} cannot be reached"):
            iter(loader)
        assert time.monotonic() - started < 10


def test_a_service_that_dies_mid_run_ends_the_run_naming_it(small_folder, tmp_path):
    """The dispatcher and its workers are killed after the first batches: the run ends within
    its timeout, with the address in its one-line error."""
    process = _serve(tmp_path)  # killed: its logs are left in tmp_path
    try:
        address = re.search(r"grpc://\S+", process.stdout.readline()).group(0)
        loader = service_dataset(small_folder.root, service=address, prefetch=0, **EVAL)
        killer = threading.Timer(1.5, lambda: os.killpg(process.pid, signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        with pytest.raises((LoaderError, DatasetError)) as caught:
            measure(loader, workload="emulated:200ms", steps=1000, warmup=1, timeout=6, device="cpu")
        killer.join()
        assert address in str(caught.value) and "\n" not in str(caught.value)
        assert time.monotonic() - started < 60
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class socket_port:
    """A free port that nothing listens on, while the block runs."""

    def __enter__(self):
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        return self.socket.getsockname()[1]

    def __exit__(self, *exc):
        self.socket.close()
