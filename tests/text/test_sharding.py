"""num_shards and shard_index in both text pipelines: shard k of n holds exactly the records
i % n == k of the source's listing order, the same documents in torch and in tf.data,
shuffled within the shard, with the whole source's vocabulary; bad values and empty shards
are one-line errors naming the keyword."""

import json

import pytest

from feedbench.datasets import tfds_text
from feedbench.pipelines import ConfigError, DatasetError, stats_of
from feedbench.text import TextConfig, build_vocab, tf_dataset, torch_loader
from feedbench.text.tf_pipeline import build_tf_prefix
from feedbench.text.torch_pipeline import build_torch_prefix

from ._helpers import reference, rows, write_documents, write_jsonl

SHARDS = 3
MAX_LEN = 64
FAST = dict(tokenizer="regex", max_len=MAX_LEN, batch_size=16, workers=0, bucket=False)


def _read(framework, source, **kw):
    """(the loader, each document of one epoch as (ids, label) in batch order)."""
    loader = (torch_loader if framework == "torch" else tf_dataset)(source, **{**FAST, **kw})
    return loader, rows(loader if framework == "torch" else loader.as_numpy_iterator())


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_shard_k_holds_the_records_i_mod_n_equal_k(text_corpus, documents, framework, kind):
    texts, labels = documents
    source = text_corpus.root if kind == "jsonl" else text_corpus.root / "shards"
    vocab = build_vocab(source, tokenizer="regex")
    expected = list(zip(reference(texts, vocab, MAX_LEN), labels))
    seen = []
    for k in range(SHARDS):
        loader, got = _read(framework, source, shuffle=False, num_shards=SHARDS, shard_index=k)
        assert got == expected[k::SHARDS]  # in order without the shuffle: records k, k + 3, ...
        # the whole source's vocabulary and classes, the same in every shard
        assert stats_of(loader).vocab_size == len(vocab) and stats_of(loader).num_classes == 3
        _, shuffled = _read(framework, source, shuffle=True, bucket=True, seed=4, num_shards=SHARDS, shard_index=k)
        assert shuffled != got and sorted(shuffled) == sorted(got)  # shuffled within the shard only
        seen += got
    assert sorted(seen) == sorted(expected)  # disjoint, and together the whole source


def test_torch_and_tf_shards_hold_the_same_documents(text_corpus):
    for k in range(SHARDS):
        torch_side, from_torch = _read("torch", text_corpus.root, shuffle=False, num_shards=SHARDS, shard_index=k)
        tf_side, from_tf = _read("tf", text_corpus.root, shuffle=False, num_shards=SHARDS, shard_index=k)
        assert from_torch == from_tf and len(from_torch) == 100
        assert stats_of(torch_side).truncated == stats_of(tf_side).truncated > 0  # the shard's own, both sides


def test_a_tfds_source_is_sharded_by_its_examples_order(tmp_path, documents):
    texts, labels = documents
    source = write_documents(tmp_path / "t.jsonl", texts[:20], labels)
    for k in range(SHARDS):
        _, from_jsonl = _read("tf", source, shuffle=False, num_shards=SHARDS, shard_index=k)
        _, from_tfds = _read("tf", tfds_text(source), shuffle=False, num_shards=SHARDS, shard_index=k)
        assert from_tfds == from_jsonl and len(from_jsonl) == len(range(k, 20, SHARDS))


def test_a_bad_record_is_its_own_shards_when_skipping(tmp_path):
    good = [json.dumps({"text": f"document number {i}", "label": i % 2}) for i in range(8)]
    # records: good 0, bad, good 1, good 2, bad, good 3, ...; bad at positions 1 and 4 (shards 1 and 0)
    lines = [good[0], '{"text": "", "label": 0}', good[1], good[2], "not json", *good[3:]]
    source = write_jsonl(tmp_path / "c.jsonl", lines)
    with pytest.raises(DatasetError, match="line 2: empty document"):  # "raise": every shard refuses it
        torch_loader(source, **FAST, num_shards=2, shard_index=0)
    for framework in ("torch", "tf"):
        got = [_read(framework, source, on_error="skip", shuffle=False, num_shards=2, shard_index=k)
               for k in range(2)]
        assert [stats_of(loader).skipped for loader, _ in got] == [1, 1]
        # shard 0: records 0, 2, 6, 8 (good 0, 1, 4, 6) and the bad 4;
        # shard 1: records 3, 5, 7, 9 (good 2, 3, 5, 7) and the bad 1
        assert [label for _, label in got[0][1]] == [0, 1, 0, 0] and [label for _, label in got[1][1]] == [0, 1, 1, 1]
    lonely = write_jsonl(tmp_path / "d.jsonl", [good[0], "not json", good[1], '{"text": " ", "label": 1}'])
    with pytest.raises(DatasetError) as info:  # shard 1 has records, none of them usable
        tf_dataset(lonely, **FAST, on_error="skip", num_shards=2, shard_index=1)
    assert "\n" not in str(info.value) and "no usable document in shard 1 of 2" in str(info.value)


def test_the_prefix_pipelines_read_the_shard_too(text_corpus, documents):
    """feedbench explain's prefixes take the same config: its "read" prefix gives each document's characters."""
    texts, _ = documents
    cfg = TextConfig(**FAST, shuffle=False, num_shards=SHARDS, shard_index=2)
    lengths = [len(text) for text in texts[2::SHARDS]]
    from_torch = [int(n) for ids, _, _ in build_torch_prefix(text_corpus.root, cfg, "read") for n in ids[:, 0]]
    from_tf = [int(n) for ids, _, _ in build_tf_prefix(text_corpus.root, cfg, "read").as_numpy_iterator()
               for n in ids[:, 0]]
    assert from_torch == from_tf == lengths


@pytest.mark.parametrize(
    ("keywords", "named"),
    [({"num_shards": 0}, "num_shards"), ({"num_shards": True}, "num_shards"), ({"num_shards": 2.0}, "num_shards"),
     ({"num_shards": "2"}, "num_shards"), ({"shard_index": -1}, "shard_index"),
     ({"num_shards": 3, "shard_index": 3}, "shard_index"), ({"shard_index": False}, "shard_index")],
)
@pytest.mark.parametrize("factory", [torch_loader, tf_dataset], ids=["torch", "tf"])
def test_bad_values_are_one_line_errors_naming_the_keyword(text_corpus, factory, keywords, named):
    with pytest.raises(ConfigError) as info:
        factory(text_corpus.root, **FAST, **keywords)
    message = str(info.value)
    assert "\n" not in message and message.startswith(named) and repr(next(iter(keywords.values()))) in message


@pytest.mark.parametrize("factory", [torch_loader, tf_dataset], ids=["torch", "tf"])
def test_more_shards_than_records_is_a_one_line_error(tmp_path, factory):
    source = write_jsonl(tmp_path / "c.jsonl", [json.dumps({"text": f"doc {i}", "label": 0}) for i in range(4)])
    with pytest.raises(ConfigError) as info:
        factory(source, **FAST, num_shards=5, shard_index=0)
    message = str(info.value)
    assert "\n" not in message and message == f"num_shards=5 is more than the 4 sample(s) of {source}: " \
                                               "shard 4 would be empty (shard_index=0)"
    factory(source, **FAST, num_shards=4, shard_index=3)  # one document a shard is fine
