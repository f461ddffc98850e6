"""The procedural prose: a Zipf lexicon, realistic documents, labels a classifier can learn."""

import collections
import pickle
import re

import numpy as np
import pytest

from feedbench.datasets._prose import Lexicon, document, document_length, topic_words

# Words as a reader counts them: letters (any script) joined by apostrophes or hyphens.
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_CONTRACTIONS = re.compile(
    r"\b(?:don|it|that|can|didn|isn|won|we|they|you|I|wasn|let)['\u2019](?:t|s|m|ll|ve|re|d)\b"
)
_CLASSES = 4


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon.build(seed=7)


@pytest.fixture(scope="module")
def sample(lexicon):
    """200 (label, text) pairs, labels cycling over the classes."""
    rng = np.random.default_rng(11)
    return [(i % _CLASSES, document(rng, lexicon, i % _CLASSES, _CLASSES)) for i in range(200)]


@pytest.fixture(scope="module")
def corpus(sample):
    return "\n\n".join(text for _, text in sample)


def _words(text):
    return [w.lower() for w in _WORD.findall(text)]


def test_lexicon_has_tens_of_thousands_of_distinct_types(lexicon):
    assert len(lexicon.words) == 50_000
    assert len({w.lower() for w in lexicon.words}) == 50_000
    assert len(Lexicon.build(seed=7, size=20_000).words) == 20_000


def test_lexicon_head_is_english_function_words(lexicon):
    assert lexicon.words[:6] == ("the", "of", "and", "to", "a", "in")
    assert {"is", "it", "that", "for", "with", "was"} <= set(lexicon.words[:20])
    assert all(w.isascii() and w.isalpha() for w in lexicon.words[:150])


def test_probabilities_fall_off_as_zipf(lexicon):
    p = lexicon.probabilities
    assert p.dtype == np.float64 and p.shape == (50_000,)
    assert abs(p.sum() - 1.0) < 1e-9
    assert np.all(np.diff(p) <= 0)
    exponent = -np.polyfit(np.log(np.arange(10, 1001)), np.log(p[9:1000]), 1)[0]
    assert 1.0 < exponent < 1.15
    assert 0.03 < p[0] < 0.08  # "the": about 5% of English tokens


def test_lexicon_mixes_pseudo_words_of_every_kind(lexicon):
    tail = lexicon.words[150:]
    share = lambda test: sum(map(test, tail)) / len(tail)  # noqa: E731
    assert 0.005 < share(lambda w: "-" in w) < 0.05
    assert 0.005 < share(lambda w: len(w) > 1 and w[0].isupper() and w[1:].islower()) < 0.06
    assert 0.001 < share(lambda w: len(w) > 1 and w.isupper()) < 0.02
    assert 0.002 < share(lambda w: not w.isascii()) < 0.02
    for suffix in ("ing", "ed", "s", "tion", "ly", "ness"):
        assert share(lambda w, s=suffix: w.endswith(s)) > 0.005, suffix


def test_lexicon_is_deterministic_per_seed(lexicon):
    again = Lexicon.build(seed=7)
    assert again.words == lexicon.words
    assert np.array_equal(again.topic_pool, lexicon.topic_pool)
    other = Lexicon.build(seed=8)
    assert other.words[:150] == lexicon.words[:150]
    assert len(set(other.words[150:1150]) & set(lexicon.words[150:1150])) < 500


def test_lexicon_is_read_only_and_pickles(lexicon):
    with pytest.raises(ValueError):
        lexicon.probabilities[0] = 0.5
    copy = pickle.loads(pickle.dumps(lexicon))
    assert copy.words == lexicon.words
    a = document(np.random.default_rng(5), lexicon, 1, _CLASSES)
    assert document(np.random.default_rng(5), copy, 1, _CLASSES) == a


def test_lexicon_rejects_a_tiny_size():
    with pytest.raises(ValueError, match="size"):
        Lexicon.build(seed=1, size=100)


def test_document_length_is_lognormal_around_200_words():
    rng = np.random.default_rng(3)
    lengths = np.array([document_length(rng) for _ in range(2_000)])
    assert 150 <= np.median(lengths) <= 260
    assert 0.005 <= np.mean(lengths > 1_000) <= 0.05
    assert lengths.min() >= 3 and lengths.max() <= 5_000


def test_document_has_the_drawn_number_of_words(lexicon):
    for seed in range(20):
        expected = document_length(np.random.default_rng(seed))
        text = document(np.random.default_rng(seed), lexicon, seed % _CLASSES, _CLASSES)
        assert len(text.split()) == expected


def test_rank_frequency_is_zipf(corpus):
    counts = np.array(sorted(collections.Counter(_words(corpus)).values(), reverse=True), float)
    ranks = np.arange(10, 1001)
    slope = np.polyfit(np.log(ranks), np.log(counts[9:1000]), 1)[0]
    assert -1.3 < slope < -0.8
    assert len(counts) > 5_000  # a realistic number of distinct types in ~50k tokens


def test_sample_has_what_tokenizers_meet(corpus):
    words = _words(corpus)
    contractions = len(_CONTRACTIONS.findall(corpus)) / len(words)
    assert 0.01 < contractions < 0.05
    for pattern in (
        r"\d", r"\b\d{1,3}(?:,\d{3})+\b", r"\b\d+\.\d+\b", r"\d%", r"\$\d", r"\b(?:1[89]|20)\d\d\b",
        r"\b[A-Z]{2,}\b", r"[a-z], ", r"[a-z]; ", r"[a-z]: ", r"\. [A-Z]", r"\?", r"!",
        r"\([^()]+\)", r'"[^"\n]+"', r" '[^'\n]+' ", r"[a-z]'s\b", r"\u2019", r"\n\n",
        r"https?://|www\.", r"\w@\w",
    ):
        assert re.search(pattern, corpus), pattern
    assert any(ord(c) > 127 and c.isalpha() for c in corpus)
    corpus.encode("utf-8")  # no lone surrogates


def test_sentences_and_paragraphs_start_with_a_capital(corpus):
    assert re.search(r"[.?!] [a-z]", corpus) is None
    assert re.search(r"(?:^|\n\n)[a-z]", corpus) is None


def test_documents_repeat_for_a_seed_and_differ_across_seeds(lexicon):
    def texts(seed):
        rng = np.random.default_rng(seed)
        return [document(rng, lexicon, i % _CLASSES, _CLASSES) for i in range(20)]

    assert texts(1) == texts(1)
    assert all(a != b for a, b in zip(texts(1), texts(2)))


def test_topic_words_are_disjoint_mid_frequency_types(lexicon):
    zero, one = topic_words(lexicon, 0), topic_words(lexicon, 1)
    assert zero.size == one.size == 50
    assert not set(zero.tolist()) & set(one.tolist())
    assert zero.min() >= 150 and zero.max() < 50_000


def test_labels_are_distinguishable(lexicon, sample):
    topic = {lexicon.words[i].lower() for i in topic_words(lexicon, 0)}

    def topic_share(label):
        words = [w for lab, text in sample if lab == label for w in _words(text)]
        return sum(w in topic for w in words) / len(words)

    assert 0.03 < topic_share(0) < 0.07
    assert topic_share(0) > 10 * topic_share(1)


def test_label_outside_the_classes_is_rejected(lexicon):
    rng = np.random.default_rng(0)
    for label in (-1, _CLASSES):
        with pytest.raises(ValueError, match="label"):
            document(rng, lexicon, label, _CLASSES)
