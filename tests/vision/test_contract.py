"""The contract every image pipeline keeps, checked on each framework with the same test.

Shapes and dtypes in the common format, seeded runs that repeat, a loader that crosses a
spawn boundary and shuts down cleanly, and the same answers to bad input. What only one
framework does is tested in its own file.
"""

import gc
import pickle
import threading
import time

import psutil
import pytest
import torch

from feedbench.pipelines import ConfigError, DatasetError, measure, registry
from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD
from feedbench.pipelines.loop.adapter import to_torch
from feedbench.vision import ImageConfig, tf_dataset, torch_loader
from feedbench.vision.torch_threads import threads_loader

FACTORIES = {"torch": torch_loader, "tf": tf_dataset, "torch-threads": threads_loader}
FRAMEWORKS = pytest.mark.parametrize("framework", sorted(FACTORIES))
LOW = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
HIGH = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))


def _epoch(loader):
    """One epoch as torch tensors: images NCHW (a tf batch through the consumer's adapter), labels."""
    batches = [to_torch(batch) for batch in loader]
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


@FRAMEWORKS
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("output", ["float", "uint8"])
def test_batches_have_the_common_format(small_folder, framework, train, output):
    loader = FACTORIES[framework](small_folder.root, train=train, batch_size=8, workers=2, image_size=64, output=output)
    images, labels = next(iter(loader))
    layout = (8, 3, 64, 64) if framework.startswith("torch") else (8, 64, 64, 3)
    assert tuple(images.shape) == layout and tuple(labels.shape) == (8,)
    images, labels = to_torch((images, labels))
    assert images.shape == (8, 3, 64, 64) and labels.dtype == torch.int64
    if output == "uint8":
        assert images.dtype == torch.uint8 and images.max() > 200
    else:
        assert images.dtype == torch.float32
        assert LOW - 1e-5 <= images.min() < LOW + 0.5 and HIGH - 0.5 < images.max() <= HIGH + 1e-5


@FRAMEWORKS
def test_a_seed_repeats_its_epochs_with_any_number_of_workers(small_folder, framework):
    def loader(seed, workers):
        return FACTORIES[framework](small_folder.root, batch_size=4, workers=workers, seed=seed, image_size=32)

    one, two = loader(1, 0), loader(1, 2)
    first, second = _epoch(one), _epoch(one)
    assert torch.equal(first[0], _epoch(two)[0]) and torch.equal(second[0], _epoch(two)[0])
    assert not torch.equal(first[0], second[0]) and first[1].tolist() != second[1].tolist()  # epochs differ
    assert sorted(first[1].tolist()) == sorted(second[1].tolist())  # the same samples, reshuffled
    assert not torch.equal(first[0], _epoch(loader(2, 0))[0])


@FRAMEWORKS
def test_the_factory_crosses_a_spawn_boundary_and_the_loader_shuts_down(small_folder, framework):
    cfg = ImageConfig(train=False, shuffle=False, batch_size=8, workers=2, image_size=16)
    factory = pickle.loads(pickle.dumps(registry.loader_factory("image", framework, small_folder.root, cfg)))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    threads_before = set(threading.enumerate())
    loader = factory()
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=4, warmup=1)
    assert result.ok and result.samples == 32 and result.epochs >= 2
    del loader  # a dropped loader ends its workers (torch keeps them while the loader lives)
    gc.collect()
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in left], timeout=10)
    left = {p.pid for p in alive}
    assert not left, f"{framework} left processes behind: {left}"
    deadline = time.monotonic() + 10  # a thread loader's threads see their stop within a tenth of a second
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - threads_before, f"{framework} left threads behind"


@FRAMEWORKS
def test_raise_names_a_bad_file_in_one_line(broken_folder, framework):
    root, bad = broken_folder
    with pytest.raises(DatasetError) as info:
        list(FACTORIES[framework](root, train=False, shuffle=False, batch_size=4, workers=2, image_size=16))
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and any(name in message for name in bad)


@FRAMEWORKS
def test_skip_drops_and_counts_every_bad_file_into_the_result(broken_folder, framework, caplog):
    root, bad = broken_folder
    loader = FACTORIES[framework](root, train=False, shuffle=False, batch_size=4, workers=2, image_size=16,
                                  on_error="skip")
    images, labels = _epoch(loader)
    assert len(labels) == 24
    for name in bad:
        assert name in caplog.text
    for reason in ("truncated JPEG", "empty file", "not a JPEG or PNG", "unreadable"):
        assert reason in caplog.text
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=6, warmup=1, cycle=False)
    assert result.skipped == len(bad)


@FRAMEWORKS
def test_empty_and_missing_folders_are_named(tmp_path, framework):
    factory = FACTORIES[framework]
    with pytest.raises(DatasetError, match="no class folders"):
        factory(tmp_path, workers=0)
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match="cats: class folder with no image"):
        factory(tmp_path, workers=0)
    with pytest.raises(DatasetError, match="no such image folder"):
        factory(tmp_path / "nope", workers=0)


@FRAMEWORKS
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size must be a positive"), ({"workers": -1}, "workers must be"),
     ({"output": "half"}, "output must be one of"), ({"on_error": "ignore"}, "on_error must be one of"),
     ({"image_size": 0}, "image_size must be"), ({"prefetch": "lots"}, "prefetch must be"),
     # a word is not a boolean: "no" was accepted and ran the train transform
     ({"train": "no"}, "train must be True or False, got 'no'"), ({"shuffle": "no"}, "shuffle must be True or False"),
     ({"drop_last": "False"}, "drop_last must be True, False or None")],
)
def test_bad_keywords_are_named(small_folder, framework, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FACTORIES[framework](small_folder.root, **kwargs)


@FRAMEWORKS
def test_drop_last_follows_train_unless_given(small_folder, framework):
    def batches(**kw):
        return len(list(FACTORIES[framework](small_folder.root, batch_size=10, workers=0, image_size=16, **kw)))

    assert batches() == 2 and batches(train=False) == 3  # 24 images: train drops the short batch
    assert batches(drop_last=False) == 3 and batches(train=False, drop_last=True) == 2

