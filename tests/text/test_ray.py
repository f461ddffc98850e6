"""ray (text): the torch pipeline with Ray Data making the batches gives the DataLoader's very
batches for a seed (shuffled, bucketed), and reports what the DataLoader reports; bad records are
named or skipped and counted when the loader is built, as the DataLoader's are. Ray takes seconds
to start, and its task workers seconds to load torch the first time: one local instance, one
pass, the regex tokenizer."""

import hashlib
import os

import numpy as np
import pytest

from feedbench.pipelines import DatasetError
from feedbench.pipelines.core import ray_cluster
from feedbench.text import torch_loader
from feedbench.text._config import RayTextConfig, TextConfig
from feedbench.text.ray_pipeline import build_ray_prefix, ray_loader
from feedbench.text.torch_pipeline import build_torch_prefix

FAST = dict(tokenizer="regex", batch_size=16, max_len=64)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) that the module's loaders join, with a token of the tests'
    own (Ray 2.60 authenticates by default, and would write one into the home folder): one for
    the test process, as tests/vision/test_ray.py's (Ray reads it once per process)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "token")
    patch.setenv("RAY_AUTH_TOKEN", hashlib.sha256(f"feedbench tests {os.getpid()}".encode()).hexdigest())
    ray_cluster.join("", 2)
    yield
    ray_cluster.leave("")
    patch.undo()


def _epoch(loader):
    return [tuple(t.numpy().copy() for t in batch) for batch in loader]


def test_the_batches_are_the_dataloaders(local_ray, text_corpus):
    keywords = dict(FAST, bucket=True, shuffle=True, seed=5)
    loader = ray_loader(text_corpus.root, workers=2, **keywords)
    mine, theirs = _epoch(loader), _epoch(torch_loader(text_corpus.root, workers=0, **keywords))
    assert len(mine) == len(theirs) == len(loader)
    for batch_a, batch_b in zip(mine, theirs):
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(batch_a, batch_b))
    loader.close()


def test_a_prefix_is_the_dataloaders_prefix(local_ray, text_corpus):
    keywords = dict(FAST, shuffle=False)
    prefix = build_ray_prefix(text_corpus.root, RayTextConfig(workers=1, **keywords), "tokenize")
    mine, theirs = _epoch(prefix), _epoch(build_torch_prefix(text_corpus.root, TextConfig(workers=0, **keywords),
                                                             "tokenize"))
    assert len(mine) == len(theirs) and all(np.array_equal(a, b) for x, y in zip(mine, theirs) for a, b in zip(x, y))
    prefix.close()


def test_it_reports_what_the_dataloader_reports(text_corpus):
    """Read when the loader is built: no Ray session needed."""
    keywords = dict(FAST, max_len=8, workers=2, prefetch=3)
    mine, theirs = ray_loader(text_corpus.root, **keywords), torch_loader(text_corpus.root, **keywords)
    ours, its = mine.loader_stats(), theirs.loader_stats()
    assert (ours.truncated, ours.vocab_size, ours.num_classes) == (its.truncated, its.vocab_size, its.num_classes)
    assert ours.truncated > 0 and len(mine.vocab) == len(theirs.vocab)
    assert dict(ours.threads) == {"Ray tasks making batches": 2, "intra-op per Ray task": 1}
    assert ours.batches_ahead == len(mine)  # batches of a few KB: Ray Data makes the whole pass ahead


def test_bad_records_are_named_or_skipped_and_counted_when_built(tmp_path):
    corpus = tmp_path / "c.jsonl"
    good = [f'{{"text": "document number {i} is fine.", "label": {i % 2}}}' for i in range(20)]
    corpus.write_text("\n".join([*good, '{"text": "  ", "label": 0}', '{"text": "no label"}']) + "\n")
    with pytest.raises(DatasetError) as info:
        ray_loader(corpus, **FAST)
    assert "c.jsonl" in str(info.value) and "\n" not in str(info.value)
    mine, theirs = ray_loader(corpus, on_error="skip", **FAST), torch_loader(corpus, on_error="skip", **FAST)
    assert mine.skipped == theirs.skipped == 2 == mine.loader_stats().skipped
