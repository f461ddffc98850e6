"""DataLoader workers: started from a fork server, and a worker that dies is one error naming it."""

import gc
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from feedbench.pipelines import LoaderError
from feedbench.vision import torch_loader
from feedbench.vision.torch_pipeline import collate

SCRIPT = """
from feedbench.pipelines import measure
from feedbench.vision import torch_loader
measure(torch_loader({root!r}, workers=1, batch_size=4, image_size=16), workload="emulated:1ms", device="cpu", steps=2)
"""


def test_a_worker_that_dies_while_starting_is_one_error_naming_it_not_a_hang(fault, small_folder):
    """A script read from standard input cannot be imported by a worker, which dies at once: the
    parent used to wait in its pipe or for the DataLoader's timeout (120 s)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-"], input=SCRIPT.format(root=str(small_folder.root)), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    last = done.stderr.strip().splitlines()[-1]
    assert "LoaderError: the loader raised at step 1" in last and "DataLoader worker process pid" in last
    assert "exited with status 1" in last and "cannot run from standard input" in last


def test_a_worker_killed_mid_run_is_named(fault, small_folder):
    loader = torch_loader(small_folder.root, workers=2, batch_size=2, image_size=16, shuffle=False)
    batches = iter(loader)
    next(batches)
    victim = loader._iterator._workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    with pytest.raises(LoaderError, match=rf"pid {victim.pid} \(killed by SIGKILL\)"):
        for _ in range(100):
            next(batches)
    del batches, loader


def test_workers_are_forks_of_a_server_that_imported_torch_once(small_folder):
    loader = torch_loader(small_folder.root, workers=2, batch_size=2, image_size=16)
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    batches = iter(loader)
    next(batches)
    workers = [psutil.Process(w.pid) for w in loader._iterator._workers]
    parents = {w.parent().pid for w in workers}
    assert len(parents) == 1 and parents != {os.getpid()}  # both forked by the same server
    assert all("tensorflow" not in " ".join(m.path for m in w.memory_maps()) for w in workers)
    del batches, loader




def test_a_worker_stacks_its_image_batch_straight_into_shared_memory(small_folder, monkeypatch):
    """In a worker (get_worker_info() set, as the DataLoader's worker loop sets it) the image
    batch is made in shared memory, not copied there when sent; in the main process it is an
    ordinary stack. Checked in this process: what a worker runs cannot be watched from outside."""
    import torch
    from torch.utils.data._utils import worker as worker_state

    loader = torch_loader(small_folder.root, workers=0, batch_size=4, image_size=16, shuffle=False)
    samples = [loader.dataset[(0, i)] for i in range(4)]
    expected = torch.stack([image for image, _, _ in samples])
    images, labels, problems = collate(samples)
    assert not images.is_shared() and torch.equal(images, expected) and not problems
    monkeypatch.setattr(worker_state, "_worker_info",
                        worker_state.WorkerInfo(id=0, num_workers=1, seed=0, dataset=loader.dataset))
    assert torch.utils.data.get_worker_info() is not None
    images, labels, problems = collate(samples)
    assert images.is_shared() and torch.equal(images, expected) and len(labels) == 4


@pytest.mark.parametrize("task", ["image", "text"])
def test_a_loader_the_collector_finds_in_a_cycle_stops_its_workers(small_folder, text_corpus, task):
    """Its workers are told to stop and exit (status 0): the collector used to stop the threads
    that feed the workers' queues first, so that they never heard the stop and were terminated
    (-SIGTERM) after 5 s each, a stall of 10 s wherever the collector ran."""
    from feedbench.pipelines.core import dataloader
    from feedbench.text import torch_loader as text_loader

    if task == "image":
        loader = torch_loader(small_folder.root, train=False, batch_size=4, workers=2, image_size=16)
    else:
        loader = text_loader(text_corpus.root, tokenizer="regex", batch_size=4, workers=2)
    gc.disable()  # the collector runs where this test says
    try:
        batches = iter(loader)
        next(batches)
        workers = list(loader._iterator._workers)
        key = id(loader._iterator)
        assert key in dataloader._QUEUES
        loader.itself = loader  # garbage that only the collector finds
        del loader, batches
        gc.collect()
    finally:
        gc.enable()
    assert [w.exitcode for w in workers] == [0, 0]
    assert key not in dataloader._QUEUES  # let go with the iterator
