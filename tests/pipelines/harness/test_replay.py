"""The loaders of explain's ceilings: Resident gives the first batch again and again; Replayed
hands out the first batches, in order and again, through the framework's own delivery (worker
processes for torch, threads for torch-threads), each reporting the pipeline's stats."""

import itertools

import pytest
import torch

from feedbench.pipelines import registry
from feedbench.pipelines.harness.replay import Replayed, Resident


def _factory(folder, framework):
    config = registry.make_config("image", framework, {"batch_size": 4, "image_size": 16, "workers": 0,
                                                       "train": False, "shuffle": False})
    return registry.loader_factory("image", framework, folder.root, config)


@pytest.mark.parametrize("framework", ["torch", "torch-threads"])
def test_replayed_hands_out_the_first_batches_in_order_through_its_delivery(small_folder, framework):
    made = list(itertools.islice(iter(_factory(small_folder, framework)()), 3))
    replay = Replayed(_factory(small_folder, framework), workers=2, prefetch=2, batches=3)()
    given = list(itertools.islice(iter(replay), 7))
    for step, (images, labels) in enumerate(given):
        assert torch.equal(images, made[step % 3][0]) and torch.equal(labels, made[step % 3][1])
    assert replay.loader_stats().num_classes == 3
    if framework == "torch-threads":
        assert dict(replay.loader.thread_roles())["threads making batches"] == 2


def test_resident_gives_the_first_batch_for_ever(small_folder):
    again = Resident(_factory(small_folder, "torch"), device="cpu")()
    first, *rest = itertools.islice(iter(again), 5)
    assert all(torch.equal(batch[0], first[0]) for batch in rest)
