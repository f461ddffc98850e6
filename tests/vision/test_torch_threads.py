"""torch-threads (image): the torch pipeline with threads making the batches gives the very
batches of the DataLoader, for a seed, train or eval, folder or Parquet shards, at any number of
workers of either kind; the threads' own settings; what the consumer loop records of it."""

import subprocess
import sys
import textwrap

import pytest
import torch

from feedbench.datasets import make_image_folder
from feedbench.pipelines import measure
from feedbench.vision import torch_loader
from feedbench.vision.torch_threads import threads_loader


def _epochs(loader, count=2):
    return [[(images.clone(), labels.clone()) for images, labels in loader] for _ in range(count)]


def _same(one, other):
    assert len(one) == len(other)
    for epoch_a, epoch_b in zip(one, other):
        assert len(epoch_a) == len(epoch_b)
        for (images_a, labels_a), (images_b, labels_b) in zip(epoch_a, epoch_b):
            assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)


@pytest.mark.parametrize(("kind", "train", "threads", "output"), [
    ("folder", True, 3, "float"), ("folder", False, 0, "uint8"), ("shards", True, 1, "uint8"),
    ("shards", False, 2, "float")])
def test_the_batches_are_the_dataloaders(small_folder, small_shards, kind, train, threads, output):
    """Against the DataLoader in the main process (its batches are the same at any worker count:
    tests/vision/test_contract.py)."""
    root = small_folder.root if kind == "folder" else small_shards.root
    keywords = dict(train=train, batch_size=5, image_size=24, seed=7, output=output)
    _same(_epochs(threads_loader(root, workers=threads, **keywords)), _epochs(torch_loader(root, workers=0,
                                                                                            **keywords)))


def test_a_shard_is_the_dataloaders_shard(small_folder):
    keywords = dict(batch_size=4, image_size=16, seed=1, num_shards=3, shard_index=2)
    _same(_epochs(threads_loader(small_folder.root, workers=2, **keywords), 1),
          _epochs(torch_loader(small_folder.root, workers=0, **keywords), 1))


def test_it_reports_its_threads_and_what_it_makes_ahead(small_folder):
    loader = threads_loader(small_folder.root, batch_size=4, image_size=16, workers=3, prefetch=2)
    roles = dict(loader.loader_stats().threads)
    assert roles["threads making batches"] == 3 and roles["main process intra-op"] == torch.get_num_threads()
    assert loader.loader_stats().batches_ahead == 6
    assert "threads making batches" not in dict(threads_loader(small_folder.root, workers=0).loader_stats().threads)
    # "auto" warm-up: drains what it made ahead
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=4, warmup="auto")
    assert result.ok and result.samples == 16 and result.config["warmup"] == 2 * 6 + 4
    assert result.config["threads"] == roles


def test_a_script_that_stops_mid_epoch_exits_cleanly(tmp_path):
    """Threads left inside a torch kernel at the interpreter's exit aborted it ("terminate
    called without an active exception"): a loader's threads are stopped when its pass is let
    go, and at exit."""
    photos = make_image_folder(tmp_path / "photos", 24, classes=2, seed=1, size=(640, 480), workers=1).root
    script = tmp_path / "partial.py"
    script.write_text(textwrap.dedent(f"""
        from feedbench.vision.torch_threads import threads_loader
        if __name__ == "__main__":
            batches = iter(threads_loader({str(photos)!r}, batch_size=4, workers=2, prefetch=4))
            next(batches), next(batches)
            print("made two")
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "made two\n", done.stderr
    assert "terminate called" not in done.stderr
