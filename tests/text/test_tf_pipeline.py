"""The tf.data text pipeline against a Python reference: ids, padding, lengths, buckets, seeds."""

import json
from collections import Counter

import numpy as np
import pytest

from feedbench.datasets import tfds_text
from feedbench.pipelines import ConfigError, DatasetError, measure, stats_of
from feedbench.pipelines.core.frameworks import import_tensorflow
from feedbench.pipelines.registry import build
from feedbench.text import TextConfig, Vocab, build_vocab, tf_dataset, tokenize
from feedbench.text._common import bucket_boundaries, bucket_of

from ._helpers import bucket_batches, reference, rows, write_documents, write_jsonl

tf = import_tensorflow()


def epoch(dataset):
    return list(dataset.as_numpy_iterator())


@pytest.mark.parametrize("workers", [0, 2, "autotune"])
def test_ids_lengths_and_padding_match_the_reference(text_corpus, documents, workers):
    texts, labels = documents
    dataset = tf_dataset(text_corpus.root, tokenizer="regex", max_len=64, batch_size=32, workers=workers,
                         shuffle=False, bucket=False, prefetch="autotune" if workers == "autotune" else 2)
    batches = epoch(dataset)
    vocab = build_vocab(text_corpus.root, tokenizer="regex")
    assert stats_of(dataset).vocab_size == len(vocab)
    assert rows(batches) == list(zip(reference(texts, vocab, 64), labels))
    full = [len(tokenize(text, "regex", lowercase=True)) for text in texts]
    assert stats_of(dataset).truncated == stats_of(dataset.take(1)).truncated == sum(n > 64 for n in full) > 0
    assert np.concatenate([b[1] for b in batches]).tolist() == [min(n, 64) for n in full]
    for ids, lengths, labels_ in batches:
        assert ids.dtype == lengths.dtype == labels_.dtype == np.int64
        assert ids.shape == (len(labels_), lengths.max())
        beyond = np.arange(ids.shape[1]) >= lengths[:, None]
        assert (ids[beyond] == 0).all() and (ids[~beyond] != 0).all()
    assert stats_of(dataset).skipped == 0
    assert vocab == Vocab.build(texts, tokenizer_name="regex", lowercase=True)  # what torch builds too


def test_nltk_tokenizes_through_numpy_function_like_the_reference(tmp_path, documents):
    texts, labels = documents
    source = write_documents(tmp_path / "n.jsonl", texts[:40], labels)
    dataset = tf_dataset(source, tokenizer="nltk", max_len=100, batch_size=8, workers=2, shuffle=False, bucket=False)
    vocab = build_vocab(source, tokenizer="nltk")
    assert vocab.tokenizer == "nltk" and stats_of(dataset).vocab_size == len(vocab)
    assert rows(epoch(dataset)) == list(zip(reference(texts[:40], vocab, 100, "nltk"), labels[:40]))


def test_every_document_once_per_epoch_when_shuffled_and_bucketed(text_corpus, documents):
    texts, labels = documents
    dataset = tf_dataset(text_corpus.root, tokenizer="regex", max_len=128, batch_size=16, workers=2)
    vocab = build_vocab(text_corpus.root, tokenizer="regex")
    expected = Counter((tuple(ids), label) for ids, label in zip(reference(texts, vocab, 128), labels))
    first, second = epoch(dataset), epoch(dataset)
    boundaries = bucket_boundaries(128)
    for batches in (first, second):
        assert Counter((tuple(ids), label) for ids, label in rows(batches)) == expected
        assert all(len({bucket_of(int(n), boundaries) for n in b[1]}) == 1 for b in batches)
        assert all(b[0].shape[1] == b[1].max() for b in batches)
    assert rows(first) != rows(second)  # reshuffled


def test_buckets_mirror_bucket_by_sequence_length(text_corpus, documents):
    texts, labels = documents
    boundaries = bucket_boundaries(256)
    for drop_last in (False, True):
        dataset = tf_dataset(text_corpus.root, tokenizer="regex", max_len=256, batch_size=8, workers=2,
                             shuffle=False, drop_last=drop_last)
        expected = reference(texts, build_vocab(text_corpus.root, tokenizer="regex"), 256)
        want = bucket_batches([len(ids) for ids in expected], 8, drop_last, boundaries)
        got = epoch(dataset)
        assert [rows([b]) for b in got] == [[(expected[i], labels[i]) for i in batch] for batch in want]
        assert all(len(b[2]) == 8 for b in got) == drop_last


def test_a_seed_repeats_its_batches_with_any_number_of_workers(text_corpus):
    def dataset(seed, workers):
        return tf_dataset(text_corpus.root, tokenizer="regex", max_len=128, batch_size=16, workers=workers, seed=seed)

    one = dataset(1, 0)
    first, second = rows(epoch(one)), rows(epoch(one))
    two = dataset(1, 2)
    assert rows(epoch(two)) == first and rows(epoch(two)) == second
    assert first != second  # the next epoch is another order
    assert rows(epoch(dataset(2, 2))) != first


def test_drop_last_drops_the_short_batch(text_corpus):
    def sizes(drop_last):
        dataset = tf_dataset(text_corpus.root, tokenizer="regex", batch_size=64, workers=1, bucket=False,
                             drop_last=drop_last)
        return [len(labels) for _, _, labels in epoch(dataset)]

    assert sizes(False) == [64, 64, 64, 64, 44] and sizes(True) == [64] * 4


def test_skipped_records_reach_the_measured_result(tmp_path):
    good = [json.dumps({"text": f"document number {i} says hello.", "label": i % 2}) for i in range(12)]
    bad = ['{"text": "no label"}', "not json", json.dumps({"text": "  ", "label": 0})]
    source = write_jsonl(tmp_path / "mixed.jsonl", good[:5] + bad + good[5:])
    with pytest.raises(DatasetError, match="mixed.jsonl line 6"):
        tf_dataset(source, tokenizer="regex", workers=0)
    dataset = tf_dataset(source, tokenizer="regex", batch_size=4, workers=0, on_error="skip")
    assert stats_of(dataset).skipped == stats_of(dataset.prefetch(1)).skipped == 3
    assert sum(len(labels) for _, _, labels in epoch(dataset)) == 12
    result = measure(dataset, workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert result.skipped == 3


def test_a_vocabulary_of_another_tokenizer_is_a_config_error(tmp_path, documents):
    texts, _ = documents
    nltk_vocab = Vocab.build(texts[:20], tokenizer_name="nltk", lowercase=True)
    source = write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": t, "label": 0}) for t in texts[:4]])
    with pytest.raises(ConfigError, match="nltk"):
        tf_dataset(source, tokenizer="regex", vocab=nltk_vocab, workers=0)
    with pytest.raises(ConfigError, match="nltk"):
        tf_dataset(source, tokenizer="regex", vocab=nltk_vocab.save(tmp_path / "nltk.json"), workers=0)
    with pytest.raises(ConfigError, match="lowercase"):
        tf_dataset(source, tokenizer="nltk", lowercase=False, vocab=nltk_vocab, workers=0)


def test_a_given_vocabulary_encodes_unknown_tokens_as_unk(tmp_path, documents):
    texts, labels = documents
    vocab = Vocab.build(texts[:50], tokenizer_name="regex", lowercase=True, max_size=200)
    source = write_documents(tmp_path / "b.jsonl", texts[:40], labels)
    cfg = TextConfig(tokenizer="regex", vocab=vocab, max_len=100, batch_size=16, workers=2, shuffle=False, bucket=False)
    dataset = build("text", "tf", source, cfg)  # the registry's way to build_tf_dataset
    assert stats_of(dataset).vocab_size == len(vocab) and stats_of(dataset).num_classes == 3
    got = rows(epoch(dataset))
    assert got == list(zip(reference(texts[:40], vocab, 100), labels[:40]))
    assert any(1 in ids for ids, _ in got)  # unknown tokens become UNK_ID


def test_a_tfds_source_gives_the_ids_of_the_jsonl_path(tmp_path, documents):
    texts, labels = documents
    source = write_documents(tmp_path / "t.jsonl", texts[:30], labels)

    def ids(src):
        dataset = tf_dataset(src, tokenizer="regex", max_len=80, batch_size=8, workers=2, shuffle=False, bucket=False)
        return stats_of(dataset), rows(epoch(dataset))

    from_jsonl, from_tfds = ids(source), ids(tfds_text(source))
    assert from_tfds == from_jsonl and len(from_jsonl[1]) == 30


def test_bad_tfds_examples_are_named_and_skipped():
    examples = tf.data.Dataset.from_tensor_slices({"text": ["one good document", "", "two"], "label": [0, 1, 1]})
    with pytest.raises(DatasetError, match="TFDS example 1: empty document"):
        tf_dataset(examples, tokenizer="regex", workers=0)
    dataset = tf_dataset(examples, tokenizer="regex", workers=0, on_error="skip", shuffle=False, bucket=False)
    # ids by count, then code points
    assert stats_of(dataset).skipped == 1 and rows(epoch(dataset)) == [([4, 3, 2], 0), ([5], 1)]
    with pytest.raises(DatasetError, match="no feature.* label"):
        tf_dataset(tf.data.Dataset.from_tensor_slices({"text": ["a"]}), tokenizer="regex", workers=0)


def test_awkward_documents_tokenize_in_the_map_like_the_reference(tmp_path):
    # A NUL and Unicode 14 letters send a document to Python's lowercasing inside the map.
    texts = ["Don't stop, U.S.A.!", "a NUL\x00INSIDE ΟΔΟΣ", "İSTANBUL ΣΑΣ. Straße", "Ⱟ Ꟁ 𐕰𐕱 ok",
             "日本語。😀👍🏽\u00a0x\u3000y"]
    source = write_documents(tmp_path / "w.jsonl", texts, [0] * len(texts))
    for workers in (0, 2):
        dataset = tf_dataset(source, tokenizer="regex", batch_size=2, workers=workers, shuffle=False, bucket=False)
        assert rows(epoch(dataset)) == [(ids, 0)
                                        for ids in reference(texts, build_vocab(source, tokenizer="regex"), 512)]
