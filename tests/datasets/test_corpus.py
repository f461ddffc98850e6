import json
from statistics import median

import pyarrow.parquet as pq
import pytest

from feedbench.datasets import ParquetShards, make_text_corpus
from feedbench.pipelines.core.errors import ConfigError


def _jsonl(dataset):
    with open(dataset.root / "corpus.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_jsonl_and_parquet_hold_the_same_records(text_corpus):
    records = _jsonl(text_corpus)
    assert len(records) == 300
    assert all(set(r) == {"text", "label"} for r in records)
    rows = list(ParquetShards(text_corpus.root / "shards").iter_rows())
    assert [r["text"] for r in rows] == [r["text"] for r in records]
    assert [r["label"] for r in rows] == [r["label"] for r in records] == [i % 3 for i in range(300)]
    assert [r["id"] for r in rows] == list(range(300))


def test_shards_are_streamable_row_groups(text_corpus):
    shards = sorted((text_corpus.root / "shards").glob("*.parquet"))
    assert [s.name for s in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    meta = pq.read_metadata(shards[0])
    assert meta.num_rows == 128
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [32, 32, 32, 32]
    assert pq.read_metadata(shards[2]).num_rows == 300 - 256


def test_manifest_lists_jsonl_and_shards_with_hashes(text_corpus):
    paths = [f["path"] for f in text_corpus.files]
    assert paths[0] == "corpus.jsonl"
    assert paths[1:] == [f"shards/part-0000{i}.parquet" for i in range(3)]
    assert sum(f["rows"] for f in text_corpus.files[1:]) == 300


def test_text_looks_like_prose_with_a_long_tail(text_corpus):
    texts = [r["text"] for r in _jsonl(text_corpus)]
    words = [len(t.split()) for t in texts]
    assert 140 <= median(words) <= 280
    assert max(words) > 600  # the tail, in 300 documents
    joined = " ".join(texts)
    assert any(c.isupper() for c in joined) and any(c.isdigit() for c in joined)
    assert "'" in joined and "," in joined and "." in joined


def test_same_seed_same_corpus_whatever_the_workers(tmp_path):
    one = make_text_corpus(tmp_path / "a", 600, seed=4, workers=1)
    two = make_text_corpus(tmp_path / "b", 600, seed=4, workers=2)
    assert [f["sha256"] for f in one.files] == [f["sha256"] for f in two.files]
    other = make_text_corpus(tmp_path / "c", 600, seed=5, workers=1)
    assert one.files[0]["sha256"] != other.files[0]["sha256"]


def test_same_arguments_reuse(tmp_path):
    make_text_corpus(tmp_path / "a", 20, workers=1)
    assert make_text_corpus(tmp_path / "a", 20, workers=1).reused


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "n must be a positive"), ({"n": 2, "classes": 3}, r"classes \(3\) must not exceed n \(2\)")],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_text_corpus(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
