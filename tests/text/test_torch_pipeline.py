"""The torch text pipeline against a Python reference: ids, padding, lengths, buckets, seeds."""

import functools
import json
import os
import pickle
from collections import Counter

import pytest
import torch

from feedbench.pipelines import ConfigError, DatasetError, measure
from feedbench.text import TextConfig, Vocab, tokenize, torch_loader
from feedbench.text._common import bucket_boundaries, bucket_of
from feedbench.text.torch_pipeline import build_torch_loader

from ._helpers import bucket_batches, reference, rows, write_jsonl


def padding_fraction(batches):
    cells = sum(ids.numel() for ids, _, _ in batches)
    return 1 - sum(int(lengths.sum()) for _, lengths, _ in batches) / cells


@pytest.mark.parametrize("workers", [0, 2])
def test_ids_lengths_and_padding_match_the_reference(text_corpus, documents, workers):
    texts, labels = documents
    loader = torch_loader(text_corpus.root, tokenizer="regex", max_len=64, batch_size=32, workers=workers,
                          shuffle=False, bucket=False)
    batches = list(loader)
    expected = reference(texts, loader.vocab, 64)
    assert rows(batches) == list(zip(expected, labels))
    full = [len(tokenize(text, "regex", lowercase=True)) for text in texts]
    assert loader.truncated == loader.loader_stats().truncated == sum(n > 64 for n in full) > 0
    assert torch.cat([b[1] for b in batches]).tolist() == [min(n, 64) for n in full]
    for ids, lengths, labels_ in batches:
        assert ids.dtype == lengths.dtype == labels_.dtype == torch.int64
        assert ids.shape == (len(labels_), int(lengths.max()))
        beyond = torch.arange(ids.shape[1]) >= lengths[:, None]
        assert (ids[beyond] == 0).all() and (ids[~beyond] != 0).all()
    assert loader.vocab.tokenizer == "regex" and loader.skipped == loader.loader_stats().skipped == 0


def test_every_document_once_per_epoch_when_shuffled_and_bucketed(text_corpus, documents):
    texts, labels = documents
    loader = torch_loader(text_corpus.root, tokenizer="regex", max_len=128, batch_size=16, workers=0)
    expected = Counter((tuple(ids), label) for ids, label in zip(reference(texts, loader.vocab, 128), labels))
    first, second = rows(loader), rows(loader)
    assert Counter((tuple(ids), label) for ids, label in first) == expected
    assert Counter((tuple(ids), label) for ids, label in second) == expected
    assert first != second  # reshuffled


def test_buckets_mirror_bucket_by_sequence_length(text_corpus, documents):
    texts, labels = documents
    boundaries = bucket_boundaries(256)
    for drop_last in (False, True):
        loader = torch_loader(text_corpus.root, tokenizer="regex", max_len=256, batch_size=8, workers=0,
                              shuffle=False, drop_last=drop_last)
        expected = reference(texts, loader.vocab, 256)
        want = bucket_batches([len(ids) for ids in expected], 8, drop_last, boundaries)
        got = list(loader)
        assert len(got) == len(loader) == len(want)
        assert [rows([b]) for b in got] == [[(expected[i], labels[i]) for i in batch] for batch in want]
        assert all(len({bucket_of(int(n), boundaries) for n in b[1]}) == 1 for b in got)
        assert all(len(b[2]) == 8 for b in got) == drop_last


def test_buckets_pad_less_than_plain_batches(text_corpus):
    def batches(bucket):
        return list(torch_loader(text_corpus.root, tokenizer="regex", batch_size=16, workers=0, seed=3, bucket=bucket))

    bucketed, plain = batches(True), batches(False)
    boundaries = bucket_boundaries(512)
    assert all(len({bucket_of(int(n), boundaries) for n in b[1]}) == 1 for b in bucketed)
    assert sum(len(b[2]) for b in bucketed) == sum(len(b[2]) for b in plain) == 300
    assert padding_fraction(bucketed) < padding_fraction(plain) / 2, (padding_fraction(bucketed),
                                                                      padding_fraction(plain))


def test_a_seed_repeats_its_batches_with_any_number_of_workers(text_corpus):
    def loader(seed, workers):
        return torch_loader(text_corpus.root, tokenizer="regex", max_len=128, batch_size=16, workers=workers, seed=seed)

    def same(a, b):
        return len(a) == len(b) and all(all(torch.equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))

    one, two = loader(1, 0), loader(1, 2)
    first, second = list(one), list(one)
    assert same(first, list(two)) and same(second, list(two))
    assert not same(first, second)  # the next epoch is another order
    assert not same(first, list(loader(2, 0)))


def test_drop_last_drops_the_short_batch(text_corpus):
    def sizes(drop_last):
        loader = torch_loader(text_corpus.root, tokenizer="regex", batch_size=64, workers=0, bucket=False,
                              drop_last=drop_last)
        out = [len(labels) for _, _, labels in loader]
        assert len(out) == len(loader)
        return out

    assert sizes(False) == [64, 64, 64, 64, 44] and sizes(True) == [64] * 4


def test_skipped_records_reach_the_measured_result(tmp_path):
    good = [json.dumps({"text": f"document number {i} says hello.", "label": i % 2}) for i in range(12)]
    bad = ['{"text": "no label"}', "not json", json.dumps({"text": "  ", "label": 0})]
    source = write_jsonl(tmp_path / "mixed.jsonl", good[:5] + bad + good[5:])
    with pytest.raises(DatasetError, match="mixed.jsonl line 6"):
        torch_loader(source, tokenizer="regex", workers=0)
    loader = torch_loader(source, tokenizer="regex", batch_size=4, workers=0, on_error="skip")
    assert loader.skipped == loader.loader_stats().skipped == 3
    assert sum(len(labels) for _, _, labels in loader) == 12
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert result.skipped == 3


def test_a_vocabulary_of_another_tokenizer_is_a_config_error(tmp_path, documents):
    texts, _ = documents
    nltk_vocab = Vocab.build(texts[:20], tokenizer_name="nltk", lowercase=True)
    source = write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": t, "label": 0}) for t in texts[:4]])
    with pytest.raises(ConfigError, match="nltk"):
        torch_loader(source, tokenizer="regex", vocab=nltk_vocab, workers=0)
    with pytest.raises(ConfigError, match="nltk"):
        torch_loader(source, tokenizer="regex", vocab=nltk_vocab.save(tmp_path / "nltk.json"), workers=0)
    with pytest.raises(ConfigError, match="lowercase"):
        torch_loader(source, tokenizer="nltk", lowercase=False, vocab=nltk_vocab, workers=0)


def test_a_saved_vocabulary_file_encodes_the_documents(tmp_path, documents):
    texts, labels = documents
    vocab = Vocab.build(texts[:50], tokenizer_name="regex", lowercase=True, max_size=200)
    path = vocab.save(tmp_path / "vocab.json")
    source = write_jsonl(tmp_path / "b.jsonl",
                         [json.dumps({"text": t, "label": y}) for t, y in zip(texts, labels)][:40])
    loader = torch_loader(source, tokenizer="regex", vocab=str(path), max_len=100, batch_size=16, workers=0,
                          shuffle=False, bucket=False)
    assert loader.vocab == vocab and len(loader.vocab) == 200
    got = rows(loader)
    assert got == list(zip(reference(texts[:40], vocab, 100), labels[:40]))
    assert any(1 in ids for ids, _ in got)  # unknown tokens become UNK_ID


def test_spacy_tokenizes_in_the_workers_like_the_reference(tmp_path, documents):
    texts, labels = documents
    source = write_jsonl(tmp_path / "c.jsonl",
                         [json.dumps({"text": t, "label": y}) for t, y in zip(texts[:24], labels)])
    loader = torch_loader(source, max_len=512, batch_size=8, workers=2, shuffle=False, bucket=False)
    assert loader.config.tokenizer == "spacy" and loader.vocab.tokenizer == "spacy"
    assert rows(loader) == list(zip(reference(texts[:24], loader.vocab, 512, "spacy"), labels[:24]))


def test_the_factory_pickles_and_autotune_means_one_worker_per_core(text_corpus):
    cfg = TextConfig(tokenizer="regex", max_len=32, batch_size=50, workers="autotune", prefetch="autotune")
    loader = pickle.loads(pickle.dumps(functools.partial(build_torch_loader, str(text_corpus.root), cfg)))()
    assert loader.config == cfg
    assert loader.num_workers == len(os.sched_getaffinity(0)) and loader.prefetch_factor == 2
    assert loader.persistent_workers and loader.multiprocessing_context.get_start_method() == "forkserver"
    in_process = build_torch_loader(text_corpus.root, TextConfig(tokenizer="regex", workers=0))
    assert in_process.num_workers == 0 and in_process.timeout == 0
