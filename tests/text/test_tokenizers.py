"""The tokenizers: the regex rule's character classes, its tokens on awkward text, every name
on awkward text, lowercasing, bad names and pickling."""

import pickle
import re
import unicodedata

import pytest

from feedbench.pipelines import ConfigError
from feedbench.text import TOKENIZERS, tokenize
from feedbench.text.tokenizers import PUNCT_RANGES, SPACE_RANGES, re2_class, regex_tokenize, tokenizer


def _chars(ranges):
    return [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]


@pytest.fixture(scope="module")
def short_texts(awkward_texts):
    """The awkward texts without the 100,000-character one (spaCy and NLTK are slow on it)."""
    return [text for text in awkward_texts if len(text) < 1000]


def test_space_ranges_are_exactly_python_whitespace():
    listed = {ord(c) for c in _chars(SPACE_RANGES)}
    assert listed == {c for c in range(0x110000) if chr(c).isspace()}


def test_space_ranges_are_sorted_and_disjoint():
    for ranges in (SPACE_RANGES, PUNCT_RANGES):
        assert all(lo <= hi for lo, hi in ranges)
        assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


def test_punct_ranges_are_punctuation_or_symbols_never_spaces_letters_or_digits():
    chars = _chars(PUNCT_RANGES)
    assert len(chars) > 100  # ASCII alone has 32
    for char in chars:
        assert not char.isspace(), f"U+{ord(char):04X}"
        assert not char.isalnum(), f"U+{ord(char):04X}"
        assert unicodedata.category(char)[0] in "PS", f"U+{ord(char):04X} is {unicodedata.category(char)}"


def test_punct_ranges_cover_ascii_cjk_and_fullwidth_punctuation():
    chars = set(_chars(PUNCT_RANGES))
    ascii_punct = {chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()}
    assert ascii_punct <= chars
    assert set("。，、「」【】！？（）“”‘’«»—–…") <= chars


def test_re2_class_writes_every_range():
    assert re2_class(((0x21, 0x2F), (0xA1, 0xA1), (0x1F600, 0x1F64F))) == r"\x{21}-\x{2f}\x{a1}\x{1f600}-\x{1f64f}"


def test_regex_tokens_rebuild_the_text_without_its_whitespace(awkward_texts):
    for text in awkward_texts:
        tokens = regex_tokenize(text)
        assert tokens, text[:40]
        assert all(tokens), text[:40]
        assert not any(ch.isspace() for token in tokens for ch in token), text[:40]
        assert "".join(tokens) == "".join(ch for ch in text if not ch.isspace()), text[:40]


def test_regex_tokens_are_punctuation_alone_or_runs_without_punctuation(awkward_texts):
    punct = set(_chars(PUNCT_RANGES))
    for text in awkward_texts:
        for token in regex_tokenize(text):
            assert len(token) == 1 or not (set(token) & punct), token


def test_regex_splits_runs_at_every_space_and_punctuation_character():
    """Maximal runs: two neighbouring word tokens are always apart in the text."""
    text = "state-of-the-art,U.S.A.\u3000x\u2009y\x1cz"
    assert regex_tokenize(text) == ["state", "-", "of", "-", "the", "-", "art", ",", "U", ".", "S", ".", "A", ".",
                                    "x", "y", "z"]


def test_every_punctuation_character_is_its_own_token():
    for char in _chars(PUNCT_RANGES):
        assert regex_tokenize(f"ab{char}{char}cd") == ["ab", char, char, "cd"], f"U+{ord(char):04X}"


def test_regex_keeps_words_emoji_and_combining_marks_whole():
    assert regex_tokenize("e\u0301t\u00e9 👨\u200d👩\u200d👧 🇯🇵 1\ufe0f\u20e3") == [
        "e\u0301t\u00e9", "👨\u200d👩\u200d👧", "🇯🇵", "1\ufe0f\u20e3"]
    assert regex_tokenize("1,000.50 3.14e-10") == ["1", ",", "000", ".", "50", "3", ".", "14e", "-", "10"]
    assert regex_tokenize("日本語のテキスト。中文，标点") == ["日本語のテキスト", "。", "中文", "，", "标点"]


def test_regex_python_class_matches_the_ranges():
    """The compiled pattern and the range lists agree on every BMP character."""
    from feedbench.text.tokenizers import REGEX_TOKEN

    space, punct = set(_chars(SPACE_RANGES)), set(_chars(PUNCT_RANGES))
    for c in range(0x10000):
        char = chr(c)
        if 0xD800 <= c <= 0xDFFF:
            continue
        found = REGEX_TOKEN.findall(char)
        if char in space:
            assert found == [], f"U+{c:04X}"
        else:
            assert found == [char], f"U+{c:04X}"
    assert isinstance(REGEX_TOKEN, re.Pattern) and space.isdisjoint(punct)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_each_tokenizer_takes_every_awkward_text(name, short_texts):
    for text in short_texts:
        tokens = tokenize(text, name, lowercase=False)
        assert isinstance(tokens, list) and tokens, (name, text)
        assert all(isinstance(t, str) and t and not t.isspace() for t in tokens), (name, text, tokens)


def test_regex_takes_the_long_document(awkward_texts):
    long = awkward_texts[-1]
    assert len(long) == 100_000
    assert len(tokenize(long, "regex", lowercase=True)) > 10_000


def test_spacy_drops_whitespace_tokens():
    text = "Hello\u00a0world\tx\u3000y   z\r\n\n"
    tokens = tokenize(text, "spacy", lowercase=False)
    assert tokens == ["Hello", "world", "x", "y", "z"]


def test_spacy_splits_contractions_and_punctuation():
    assert tokenize("They don't \"like\" it.", "spacy", lowercase=False) == [
        "They", "do", "n't", '"', "like", '"', "it", "."]


def test_nltk_is_the_treebank_tokenizer():
    assert tokenize("They don't \"like\" it.", "nltk", lowercase=False) == [
        "They", "do", "n't", "``", "like", "''", "it", "."]
    assert tokenize("y'all can't", "nltk", lowercase=False) == ["y'all", "ca", "n't"]


@pytest.mark.parametrize("name", TOKENIZERS)
def test_lowercase_is_str_lower_first(name, short_texts):
    for text in short_texts:
        assert tokenize(text, name, lowercase=True) == tokenize(text.lower(), name, lowercase=False), (name, text)


def test_lowercase_handles_final_sigma_dotted_i_and_sharp_s():
    assert tokenize("ΟΔΟΣ ΣΟΦΟΣ", "regex", lowercase=True) == ["οδος", "σοφος"]
    assert tokenize("İ", "regex", lowercase=True) == ["i\u0307"]
    assert tokenize("ẞ Straße", "regex", lowercase=True) == ["ß", "straße"]
    assert tokenize("ΟΔΟΣ", "regex", lowercase=False) == ["ΟΔΟΣ"]


@pytest.mark.parametrize("make", [lambda: tokenize("x", "bert", lowercase=True),
                                  lambda: tokenizer("bert", lowercase=True),
                                  lambda: tokenize("x", None, lowercase=True)])
def test_unknown_name_is_a_config_error_naming_the_choices(make):
    with pytest.raises(ConfigError) as info:
        make()
    message = str(info.value)
    assert "nltk, regex, spacy" in message and "\n" not in message
    assert "'bert'" in message or "None" in message


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("lowercase", [True, False])
def test_tokenizer_factory_pickles(name, lowercase):
    split = tokenizer(name, lowercase=lowercase)
    again = pickle.loads(pickle.dumps(split))
    text = "Don't STOP, O'Neill."
    assert again(text) == split(text) == tokenize(text, name, lowercase=lowercase)
    assert ("don" in "".join(again(text))) is lowercase
