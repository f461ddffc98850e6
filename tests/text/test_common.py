"""What both text pipelines share: the config's checks, length buckets and the tokenizing pass
(vocabulary, lengths, truncation counts, its on-disk cache)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from feedbench.pipelines import ConfigError
from feedbench.text import TextConfig, Vocab, _common, tokenize
from feedbench.text._common import bucket_boundaries, bucket_of, prepare, prepare_source
from feedbench.text._records import load

# Config --------------------------------------------------------------------------------------

@pytest.mark.parametrize("keyword, value", [
    ("batch_size", 0), ("batch_size", -1), ("batch_size", 2.0), ("batch_size", True),
    ("max_len", -1), ("max_len", 0), ("max_len", "512"),
    ("workers", -1), ("workers", "many"), ("workers", 1.5),
    ("prefetch", "x"), ("prefetch", -2),
    ("on_error", "ignore"), ("on_error", None),
    ("tokenizer", "bert"), ("tokenizer", "Regex"),
    ("lowercase", "yes"), ("shuffle", 1), ("bucket", None), ("drop_last", "no"),
    ("vocab", 3), ("vocab", ["<pad>", "<unk>"]),
    ("seed", -1), ("seed", 1.0), ("seed", False),
    ("min_freq", 0),
    ("max_size", 1), ("max_size", "10"),
])
def test_each_bad_keyword_is_a_config_error_naming_it(keyword, value):
    with pytest.raises(ConfigError) as info:
        TextConfig(**{keyword: value})
    message = str(info.value)
    assert message.startswith(f"{keyword} must"), message
    assert "\n" not in message


def test_config_defaults_and_normalisation(tmp_path):
    cfg = TextConfig()
    assert (cfg.tokenizer, cfg.max_len, cfg.lowercase, cfg.on_error, cfg.vocab) == ("spacy", 512, True, "raise", None)
    assert isinstance(cfg.workers, int) and cfg.workers >= 1
    assert TextConfig(vocab=tmp_path / "v.json").vocab == str(tmp_path / "v.json")
    assert TextConfig(workers="autotune", prefetch="autotune").workers == "autotune"
    assert TextConfig(workers=0, prefetch=0).workers == 0


def test_config_describes_a_vocab_object():
    vocab = Vocab.build(["a b"], tokenizer_name="regex", lowercase=True)
    out = TextConfig(tokenizer="regex", vocab=vocab).to_dict()
    assert out["vocab"] == "<Vocab of 4 tokens>" and out["tokenizer"] == "regex"
    json.dumps(out)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TextConfig().max_len = 3


# Buckets -------------------------------------------------------------------------------------

def test_bucket_boundaries_are_powers_of_two_below_max_len():
    assert bucket_boundaries(512) == (16, 32, 64, 128, 256)
    assert bucket_boundaries(513) == (16, 32, 64, 128, 256, 512)
    assert bucket_boundaries(16) == ()
    assert bucket_boundaries(17) == (16,)
    assert bucket_boundaries(1) == ()


@pytest.mark.parametrize("length, bucket", [
    (0, 0), (1, 0), (15, 0), (16, 1), (31, 1), (32, 2), (63, 2), (64, 3), (127, 3), (128, 4), (255, 4),
    (256, 5), (511, 5), (512, 5), (10_000, 5),
])
def test_bucket_of_edges(length, bucket):
    assert bucket_of(length, bucket_boundaries(512)) == bucket


def test_one_bucket_when_max_len_is_small():
    assert {bucket_of(n, bucket_boundaries(16)) for n in range(20)} == {0}


# The tokenizing pass -------------------------------------------------------------------------

@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A cache of this test's own, so that other tests' passes are not found in it."""
    monkeypatch.setenv("FEEDBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "text-pass"


@pytest.fixture
def counted(monkeypatch):
    """Counts the documents the pass tokenizes."""
    calls = []
    real = _common.tokenizer

    def counting(name, *, lowercase):
        split = real(name, lowercase=lowercase)

        def wrapped(text):
            calls.append(text)
            return split(text)

        return wrapped

    monkeypatch.setattr(_common, "tokenizer", counting)
    return calls


def _config(**kw):
    return TextConfig(**{"tokenizer": "regex", "workers": 0, "max_len": 64, **kw})


def test_prepare_matches_a_direct_pass(text_corpus, fresh_cache):
    corpus = load(text_corpus.root, "raise")
    cfg = _config(max_len=128)
    prepared = prepare(corpus, cfg)
    assert prepared.corpus is corpus and prepared.skipped == 0
    assert prepared.vocab == Vocab.build(corpus.texts, tokenizer_name="regex", lowercase=True)
    expected = [len(tokenize(t, "regex", lowercase=True)) for t in corpus.texts]
    assert prepared.lengths.dtype == np.int64 and prepared.lengths.tolist() == expected
    assert prepared.truncated == sum(n > 128 for n in expected)
    assert 0 < prepared.truncated < len(corpus)  # the fixture has both kinds, so the count means something
    assert prepared.boundaries == (16, 32, 64)


@pytest.mark.parametrize("kw", [{"min_freq": 3}, {"max_size": 50}, {"lowercase": False}, {"tokenizer": "nltk"}])
def test_prepare_builds_the_vocab_with_the_config(text_corpus, fresh_cache, kw):
    corpus = load(text_corpus.root, "raise")
    cfg = _config(**kw)
    vocab = prepare(corpus, cfg).vocab
    assert vocab == Vocab.build(corpus.texts, tokenizer_name=cfg.tokenizer, lowercase=cfg.lowercase,
                                min_freq=cfg.min_freq, max_size=cfg.max_size)


def test_prepare_on_awkward_text(awkward_corpus, awkward_texts, fresh_cache):
    prepared = prepare_source(awkward_corpus, _config(max_len=8))
    expected = [len(tokenize(t, "regex", lowercase=True)) for t in awkward_texts]
    assert prepared.lengths.tolist() == expected
    assert prepared.truncated == sum(n > 8 for n in expected)
    assert prepared.vocab == Vocab.build(awkward_texts, tokenizer_name="regex", lowercase=True)


def test_prepare_uses_a_given_vocab_or_file(text_corpus, fresh_cache, tmp_path):
    corpus = load(text_corpus.root, "raise")
    vocab = Vocab.build(["only these words"], tokenizer_name="regex", lowercase=True)
    assert prepare(corpus, _config(vocab=vocab)).vocab is vocab
    path = vocab.save(tmp_path / "v.json")
    assert prepare(corpus, _config(vocab=path)).vocab == vocab
    with pytest.raises(ConfigError, match="tokenizer 'regex'"):
        prepare(corpus, _config(vocab=path, lowercase=False))


def test_prepare_source_skips_and_counts(tmp_path, fresh_cache):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a b", "label": 0}\n{"text": " ", "label": 1}\n{"text": "c", "label": 1}\n',
                    encoding="utf-8")
    prepared = prepare_source(path, _config(on_error="skip"))
    assert prepared.skipped == 1 and prepared.lengths.tolist() == [2, 1]


def test_the_pass_is_cached_and_reused(text_corpus, fresh_cache, counted):
    corpus = load(text_corpus.root, "raise")
    first = prepare(corpus, _config())
    assert len(counted) == len(corpus)
    assert len(list(fresh_cache.glob("*.json"))) == 1
    assert [p.name for p in fresh_cache.iterdir() if p.name.endswith(".tmp")] == []
    counted.clear()
    again = prepare(corpus, _config(max_len=32))
    assert counted == []
    assert again.vocab == first.vocab and again.lengths.tolist() == first.lengths.tolist()
    assert again.truncated == int((first.lengths > 32).sum())


def test_the_cache_is_keyed_by_tokenizer_case_and_content(text_corpus, fresh_cache, counted):
    corpus = load(text_corpus.root, "raise")
    prepare(corpus, _config())
    for cfg in (_config(lowercase=False), _config(tokenizer="nltk")):
        counted.clear()
        prepare(corpus, cfg)
        assert len(counted) == len(corpus)
    counted.clear()
    fewer = load(text_corpus.root / "corpus.jsonl", "raise")
    fewer = type(fewer)(fewer.texts[:-1], fewer.labels[:-1], fewer.origin)
    assert prepare(fewer, _config()).lengths.size == len(corpus) - 1
    assert len(counted) == len(corpus) - 1
    assert len(list(fresh_cache.glob("*.json"))) == 4


@pytest.mark.parametrize("damage", [
    b"", b"{not json", b"\xff\xfe", b"[]", b"null", b'{"lengths": [1, 2]}', b'{"lengths": [1, 2], "counts": {}}',
    b'{"lengths": "abc", "counts": {}}', b'{"lengths": [], "counts": []}',
])
def test_a_damaged_cache_entry_is_counted_again(text_corpus, fresh_cache, counted, damage):
    corpus = load(text_corpus.root, "raise")
    first = prepare(corpus, _config())
    (entry,) = fresh_cache.glob("*.json")
    entry.write_bytes(damage)
    counted.clear()
    again = prepare(corpus, _config())
    assert len(counted) == len(corpus)
    assert again.vocab == first.vocab and again.lengths.tolist() == first.lengths.tolist()
    assert json.loads(entry.read_text(encoding="utf-8"))["lengths"] == first.lengths.tolist()


def test_an_unwritable_cache_only_costs_time(text_corpus, tmp_path, monkeypatch, counted):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("FEEDBENCH_CACHE", str(blocker))
    corpus = load(text_corpus.root, "raise")
    prepared = prepare(corpus, _config())
    assert prepared.lengths.size == len(corpus) and len(counted) == len(corpus)
    assert os.listdir(tmp_path) == ["file"] and Path(blocker).read_text(encoding="utf-8") == "not a folder"


@pytest.mark.parametrize("name, package", [("nltk", "nltk"), ("spacy", "spacy")])
def test_the_cache_is_keyed_by_the_tokenizer_packages_version(text_corpus, fresh_cache, counted, monkeypatch,
                                                              name, package):
    pytest.importorskip(package)
    corpus = load(text_corpus.root, "raise")
    prepare(corpus, _config(tokenizer=name))
    counted.clear()
    real = _common.importlib.metadata.version
    monkeypatch.setattr(_common.importlib.metadata, "version",
                        lambda dist: "999.0" if dist == package else real(dist))
    prepare(corpus, _config(tokenizer=name))
    assert len(counted) == len(corpus)
    assert len(list(fresh_cache.glob("*.json"))) == 2
