"""torch-threads (text): the torch pipeline with threads making the batches gives the very
batches of the DataLoader, for a seed, bucketed or not, for each tokenizer, at any number of
workers of either kind; it reports what the DataLoader reports."""

import numpy as np
import pytest

from feedbench.text import torch_loader
from feedbench.text.torch_threads import threads_loader


def _epochs(loader, count=2):
    return [[tuple(t.numpy().copy() for t in batch) for batch in loader] for _ in range(count)]


@pytest.mark.parametrize(("tokenizer", "bucket", "threads"), [("regex", True, 0), ("regex", False, 3),
                                                              ("spacy", True, 2), ("nltk", True, 1)])
def test_the_batches_are_the_dataloaders(text_corpus, tokenizer, bucket, threads):
    keywords = dict(tokenizer=tokenizer, bucket=bucket, batch_size=16, max_len=64, seed=5)
    mine = _epochs(threads_loader(text_corpus.root, workers=threads, **keywords))
    theirs = _epochs(torch_loader(text_corpus.root, workers=0, **keywords))  # the same at any worker count
    assert [len(epoch) for epoch in mine] == [len(epoch) for epoch in theirs]
    for epoch_a, epoch_b in zip(mine, theirs):
        for batch_a, batch_b in zip(epoch_a, epoch_b):
            assert all(np.array_equal(a, b) for a, b in zip(batch_a, batch_b))


def test_it_reports_what_the_dataloader_reports(text_corpus):
    keywords = dict(tokenizer="regex", max_len=8, workers=2)
    mine, theirs = threads_loader(text_corpus.root, **keywords), torch_loader(text_corpus.root, **keywords)
    ours, its = mine.loader_stats(), theirs.loader_stats()
    assert (ours.truncated, ours.vocab_size, ours.num_classes, ours.batches_ahead) == \
        (its.truncated, its.vocab_size, its.num_classes, its.batches_ahead) and ours.truncated > 0
    assert dict(ours.threads)["threads making batches"] == 2 and len(mine.vocab) == len(theirs.vocab)
