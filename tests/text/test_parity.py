"""Parity: with shuffling and bucketing off, the torch and the tf.data text pipelines give
identical ids, lengths and labels for every document, for every tokenizer, on the generated
corpus and on awkward text; and both equal the Python reference (tokenize, encode, truncate).
"""

import dataclasses

import numpy as np
import pytest

from feedbench.pipelines import stats_of
from feedbench.pipelines.loop.adapter import to_torch
from feedbench.text import build_vocab, tf_dataset, tokenize, torch_loader

MAX_LEN = 96  # short enough that the long generated documents and the 100,000-character one are truncated


def _documents(loader):
    """Every document of one epoch as (ids without padding, length, label), in batch order."""
    out = []
    for batch in loader:
        ids, lengths, labels = (t.numpy() for t in to_torch(batch))
        assert ids.dtype == lengths.dtype == labels.dtype == np.int64
        assert ids.shape[1] == lengths.max()  # padded to the batch's longest, no further
        for row, length, label in zip(ids, lengths, labels):
            assert not row[length:].any()  # padding is <pad> = 0
            out.append((tuple(row[:length].tolist()), int(length), int(label)))
    return out


def _pair(source, tokenizer, lowercase):
    options = {"tokenizer": tokenizer, "lowercase": lowercase, "max_len": MAX_LEN, "batch_size": 16,
               "shuffle": False, "bucket": False}
    return torch_loader(source, workers=0, **options), tf_dataset(source, workers=2, **options)


def _check(source, texts, labels, tokenizer, lowercase):
    torch_side, tf_side = _pair(source, tokenizer, lowercase)
    torch_stats, tf_stats = stats_of(torch_side), stats_of(tf_side)
    # one vocabulary, built from the source the same way (the identical ids below show its order)
    assert torch_side.vocab == build_vocab(source, tokenizer=tokenizer, lowercase=lowercase)
    # what is counted agrees; how far ahead each works and with which threads is each framework's own
    own = {"batches_ahead": None, "threads": ()}
    assert dataclasses.replace(torch_stats, **own) == dataclasses.replace(tf_stats, **own)
    assert torch_stats.threads and tf_stats.threads
    got_torch, got_tf = _documents(torch_side), _documents(tf_side)
    assert len(got_torch) == len(texts)
    assert len(got_tf) == len(got_torch)
    mismatched = [i for i, (a, b) in enumerate(zip(got_torch, got_tf)) if a != b]
    assert not mismatched, f"{len(mismatched)} documents differ, the first: {texts[mismatched[0]][:80]!r}"
    assert got_tf == got_torch
    vocab = torch_side.vocab
    reference = [(tuple(vocab.encode(tokenize(t, tokenizer, lowercase=lowercase))[:MAX_LEN]),
                  min(len(tokenize(t, tokenizer, lowercase=lowercase)), MAX_LEN), label)
                 for t, label in zip(texts, labels)]
    assert got_torch == reference
    assert torch_stats.truncated == tf_stats.truncated == sum(
        len(tokenize(t, tokenizer, lowercase=lowercase)) > MAX_LEN for t in texts)
    return torch_stats.truncated


def _corpus_records(dataset):
    import json

    records = [json.loads(line) for line in (dataset.root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in records], [r["label"] for r in records]


@pytest.mark.parametrize("tokenizer", ["regex", "nltk", "spacy"])
def test_both_frameworks_give_identical_ids_on_the_generated_corpus(text_corpus, tokenizer):
    texts, labels = _corpus_records(text_corpus)
    truncated = _check(text_corpus.root, texts, labels, tokenizer, lowercase=True)
    assert truncated > 0  # the check covered truncation


@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("tokenizer", ["regex", "nltk", "spacy"])
def test_both_frameworks_give_identical_ids_on_awkward_text(awkward_corpus, awkward_texts, tokenizer, lowercase):
    labels = [i % 3 for i in range(len(awkward_texts))]
    truncated = _check(awkward_corpus, awkward_texts, labels, tokenizer, lowercase)
    assert truncated >= 1  # the 100,000-character document


def test_parquet_shards_and_jsonl_give_the_same_batches(text_corpus):
    options = {"tokenizer": "regex", "max_len": MAX_LEN, "shuffle": False, "bucket": False, "batch_size": 32}
    jsonl = _documents(tf_dataset(text_corpus.root / "corpus.jsonl", workers=1, **options))
    shards = _documents(torch_loader(text_corpus.root / "shards", workers=0, **options))
    assert jsonl == shards
