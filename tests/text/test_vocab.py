"""The vocabulary: deterministic ids, min_freq and max_size, encoding, saving and loading."""

import json
import random
from collections import Counter

import pytest

from feedbench.pipelines import ConfigError, DatasetError
from feedbench.text import PAD_ID, UNK_ID, TextConfig, Vocab
from feedbench.text.vocab import FORMAT, pad, resolve_vocab

# Token counts under the regex tokenizer, lowercased: "." 7, the 5, b 4, a and c 3 (a tie), d 2, e 1.
CORPUS = ["The b a. The c d.", "the b b a c.", "THE e. d. b c a. the."]
COUNTS = {"the": 5, "b": 4, "a": 3, "c": 3, "d": 2, "e": 1, ".": 7}


def build(**kw):
    return Vocab.build(CORPUS, tokenizer_name="regex", lowercase=True, **kw)


def test_the_hand_made_corpus_has_the_counts_the_tests_assume():
    from feedbench.text import tokenize

    assert Counter(t for text in CORPUS for t in tokenize(text, "regex", lowercase=True)) == COUNTS


def test_ids_by_falling_count_ties_by_token():
    vocab = build()
    assert vocab.tokens == ("<pad>", "<unk>", ".", "the", "b", "a", "c", "d", "e")
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.id("<pad>") == PAD_ID and vocab.id("<unk>") == UNK_ID
    assert [vocab.id(t) for t in vocab.tokens] == list(range(len(vocab)))


def test_ids_do_not_depend_on_insertion_order():
    counts = Counter({f"w{i:03d}": 1 + i % 4 for i in range(200)})
    items = list(counts.items())
    random.Random(5).shuffle(items)
    again = Counter(dict(items))
    assert list(again) != list(counts)  # another insertion order
    one = Vocab.from_counts(counts, tokenizer_name="regex", lowercase=True)
    two = Vocab.from_counts(again, tokenizer_name="regex", lowercase=True)
    assert one.tokens == two.tokens
    assert one.tokens[2:5] == ("w003", "w007", "w011")  # count 4, in code point order


def test_ties_are_broken_by_code_points():
    counts = Counter({"b": 2, "B": 2, "é": 2, "a": 2, "日": 2, "😀": 2, "z": 3})
    vocab = Vocab.from_counts(counts, tokenizer_name="regex", lowercase=False)
    assert vocab.tokens[2:] == ("z", "B", "a", "b", "é", "日", "😀")


def test_build_is_the_same_for_documents_in_another_order():
    assert build().tokens == Vocab.build(list(reversed(CORPUS)), tokenizer_name="regex", lowercase=True).tokens


@pytest.mark.parametrize("min_freq, expected", [
    (1, (".", "the", "b", "a", "c", "d", "e")),
    (2, (".", "the", "b", "a", "c", "d")),
    (3, (".", "the", "b", "a", "c")),
    (4, (".", "the", "b")),
    (6, (".",)),
    (7, (".",)),
    (8, ()),
])
def test_min_freq_keeps_tokens_seen_that_often(min_freq, expected):
    vocab = build(min_freq=min_freq)
    assert vocab.tokens == ("<pad>", "<unk>", *expected)
    assert vocab.min_freq == min_freq


@pytest.mark.parametrize("max_size, expected", [
    (2, ()),
    (3, (".",)),
    (5, (".", "the", "b")),
    (9, (".", "the", "b", "a", "c", "d", "e")),
    (100, (".", "the", "b", "a", "c", "d", "e")),
])
def test_max_size_counts_the_special_tokens(max_size, expected):
    vocab = build(max_size=max_size)
    assert vocab.tokens == ("<pad>", "<unk>", *expected)
    assert len(vocab) == min(max_size, 9)


def test_min_freq_and_max_size_together():
    assert build(min_freq=3, max_size=4).tokens == ("<pad>", "<unk>", ".", "the")
    assert build(min_freq=4, max_size=100).tokens == ("<pad>", "<unk>", ".", "the", "b")


def test_special_tokens_in_the_text_are_not_repeated():
    vocab = Vocab.from_counts(Counter({"<unk>": 9, "<pad>": 9, "x": 1}), tokenizer_name="regex", lowercase=False)
    assert vocab.tokens == ("<pad>", "<unk>", "x")


@pytest.mark.parametrize("kw, word", [
    ({"min_freq": 0}, "min_freq"), ({"min_freq": 1.5}, "min_freq"), ({"min_freq": True}, "min_freq"),
    ({"max_size": 1}, "max_size"), ({"max_size": "5"}, "max_size"), ({"max_size": False}, "max_size"),
])
def test_bad_build_arguments_are_config_errors(kw, word):
    with pytest.raises(ConfigError, match=word):
        build(**kw)


def test_encode_gives_unknown_tokens_id_1():
    vocab = build(min_freq=2)
    assert vocab.encode(["the", "e", "zebra", ".", "<pad>"]) == [3, UNK_ID, UNK_ID, 2, PAD_ID]
    assert vocab.id("zebra") == UNK_ID
    assert vocab.encode([]) == []


def test_a_vocabulary_is_checked_when_made():
    with pytest.raises(ConfigError, match="<pad>"):
        Vocab(("a", "b"), "regex", True)
    with pytest.raises(ConfigError, match="once"):
        Vocab(("<pad>", "<unk>", "a", "a"), "regex", True)
    with pytest.raises(ConfigError, match="tokenizer"):
        Vocab(("<pad>", "<unk>"), "bert", True)


def test_pad_right_pads_with_zero():
    assert pad([[5, 6], [], [7, 8, 9]], 3) == [[5, 6, 0], [0, 0, 0], [7, 8, 9]]


def test_save_and_load_round_trip(tmp_path, awkward_texts):
    vocab = Vocab.build(awkward_texts, tokenizer_name="regex", lowercase=False, min_freq=1, max_size=500)
    path = vocab.save(tmp_path / "vocab.json")
    assert path == tmp_path / "vocab.json"
    again = Vocab.load(path)
    assert again == vocab
    assert again.tokens == vocab.tokens and (again.min_freq, again.max_size) == (1, 500)
    assert [again.id(t) for t in vocab.tokens] == list(range(len(vocab)))
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == FORMAT


def test_save_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "vocab.json"
    target.write_text("old contents", encoding="utf-8")
    build().save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]
    assert Vocab.load(target) == build()


def test_save_to_a_missing_folder_is_a_dataset_error_leaving_nothing(tmp_path):
    target = tmp_path / "missing" / "vocab.json"
    with pytest.raises(DatasetError, match="cannot write") as info:
        build().save(target)
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_under_a_file_is_a_dataset_error(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(DatasetError, match="cannot write"):
        build().save(tmp_path / "file" / "vocab.json")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_save_that_cannot_replace_its_target_removes_the_temporary_file(tmp_path):
    """The file is written aside, then the rename fails (the target is a folder)."""
    target = tmp_path / "vocab.json"
    target.mkdir()
    with pytest.raises(DatasetError, match="cannot write") as info:
        build().save(target)
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"] and list(target.iterdir()) == []


def _valid_dict():
    return build().to_dict()


@pytest.mark.parametrize("content, words", [
    (None, "no such vocabulary file"),
    (b"not json at all {", "not a feedbench vocabulary"),
    (b"\xff\xfe\x00garbage", "not a feedbench vocabulary"),
    (b"", "not a feedbench vocabulary"),
    (json.dumps(["<pad>", "<unk>", "a"]).encode(), "format"),
    (json.dumps({"tokens": ["<pad>", "<unk>"]}).encode(), "format"),
    (json.dumps({**_valid_dict(), "format": "feedbench-vocab/0"}).encode(), "format"),
    (json.dumps({k: v for k, v in _valid_dict().items() if k != "tokens"}).encode(), "damaged"),
    (json.dumps({k: v for k, v in _valid_dict().items() if k != "max_size"}).encode(), "damaged"),
    (json.dumps({**_valid_dict(), "tokens": ["a", "b"]}).encode(), "damaged"),
    (json.dumps({**_valid_dict(), "tokens": ["<pad>", "<unk>", "a", "a"]}).encode(), "damaged"),
    (json.dumps({**_valid_dict(), "tokens": 7}).encode(), "damaged"),
    (json.dumps({**_valid_dict(), "tokens": ["<pad>", "<unk>", ["a"]]}).encode(), "damaged"),
    (json.dumps({**_valid_dict(), "tokenizer": "bert"}).encode(), "damaged"),
])
def test_load_of_a_bad_file_is_a_dataset_error_naming_it(tmp_path, content, words):
    path = tmp_path / "vocab.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        Vocab.load(path)
    message = str(info.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_load_of_a_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="not a feedbench vocabulary"):
        Vocab.load(tmp_path)


def test_a_vocabulary_serves_only_its_tokenizer_and_case(tmp_path):
    vocab = build()
    vocab.check("regex", True)
    for name, lowercase in [("spacy", True), ("nltk", True), ("regex", False)]:
        with pytest.raises(ConfigError, match="build one for it"):
            vocab.check(name, lowercase)
        with pytest.raises(ConfigError, match="tokenizer 'regex'"):
            resolve_vocab(vocab.save(tmp_path / "v.json"), name, lowercase)
        with pytest.raises(ConfigError, match="lowercase=True"):
            TextConfig(tokenizer=name, lowercase=lowercase, vocab=vocab)
    assert resolve_vocab(tmp_path / "v.json", "regex", True) == vocab
    assert resolve_vocab(vocab, "regex", True) is vocab
