"""Reading a labelled corpus: every kind of bad record, skip counts, Parquet, corpus folders."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedbench.pipelines import DatasetError
from feedbench.text import Corpus
from feedbench.text._records import from_records, load, resolve

GOOD = [b'{"text": "first good", "label": 0}', b'{"text": "second good", "label": 2}',
        b'{"text": "third good", "label": 1}']


def write_jsonl(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message, message
    return message


def test_the_awkward_corpus_is_read_whole_in_order(awkward_corpus, awkward_texts):
    corpus = load(awkward_corpus, "raise")
    assert isinstance(corpus, Corpus)
    assert corpus.texts == tuple(awkward_texts)
    assert corpus.labels == tuple(i % 3 for i in range(len(awkward_texts)))
    assert (corpus.skipped, corpus.problems, len(corpus)) == (0, (), len(awkward_texts))
    assert corpus.origin == str(awkward_corpus)


def test_each_bad_record_is_an_error_naming_file_and_line(tmp_path, awkward_bad_records):
    for i, (what, line, words) in enumerate(awkward_bad_records):
        path = write_jsonl(tmp_path / f"bad{i}.jsonl", [GOOD[0], b"", line, GOOD[1]])
        with pytest.raises(DatasetError) as info:
            load(path, "raise")
        message = one_line(info)
        assert message.startswith(f"{path} line 3: "), (what, message)
        assert words in message, (what, message)


def test_skip_counts_each_bad_record_once_and_keeps_the_good_in_order(tmp_path, awkward_bad_records):
    lines, expected_lines = [], []
    for i, (_, line, _) in enumerate(awkward_bad_records):
        lines += [GOOD[i % 3], line]
        expected_lines.append(len(lines))
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    corpus = load(path, "skip")
    n = len(awkward_bad_records)
    assert corpus.texts == tuple(json.loads(GOOD[i % 3])["text"] for i in range(n))
    assert corpus.labels == tuple(json.loads(GOOD[i % 3])["label"] for i in range(n))
    assert corpus.skipped == n == len(corpus.problems)
    assert [p.split(":")[0] for p in corpus.problems] == [f"{path} line {k}" for k in expected_lines]
    for problem, (_, _, words) in zip(corpus.problems, awkward_bad_records):
        assert words in problem and "\n" not in problem


def test_blank_lines_are_not_records(tmp_path):
    path = write_jsonl(tmp_path / "blank.jsonl", [b"", GOOD[0], b"   ", b"\t", GOOD[1], b""])
    corpus = load(path, "raise")
    assert corpus.texts == ("first good", "second good") and corpus.skipped == 0


def test_crlf_and_unicode_line_separators_inside_records(tmp_path):
    """Only b"\\n" ends a record: U+2028, U+0085 and a raw \\r stay inside the text."""
    text = "a\u2028b\u0085c\x1cd"
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(json.dumps({"text": text, "label": 0}, ensure_ascii=False).encode() + b"\r\n"
                     + GOOD[0] + b"\r\n")
    assert load(path, "raise").texts == (text, "first good")


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_corpus_with_no_good_record_is_an_error(tmp_path, awkward_bad_records, on_error):
    path = write_jsonl(tmp_path / "allbad.jsonl", [line for _, line, _ in awkward_bad_records])
    with pytest.raises(DatasetError) as info:
        load(path, on_error)
    message = one_line(info)
    assert str(path) in message
    if on_error == "skip":
        assert f"no usable document ({len(awkward_bad_records)} bad record(s)" in message
        assert f"{path} line 1: not UTF-8" in message


def test_an_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="no usable document"):
        load(path, "skip")


def test_from_records_decodes_bytes_and_names_where(tmp_path):
    corpus = from_records([("r0", "plain", 0), ("r1", "café".encode(), 1), ("r2", b"\xff", 0), ("r3", "ok", -2)],
                          "mine", "skip")
    assert corpus.texts == ("plain", "café") and corpus.labels == (0, 1)
    assert corpus.skipped == 2 and corpus.problems[0].startswith("r2: not UTF-8 (byte 0xff at offset 0)")
    assert corpus.problems[1].startswith("r3: ")
    with pytest.raises(DatasetError, match=r"^r2: not UTF-8"):
        from_records([("r2", b"\xff", 0)], "mine", "raise")


# Parquet -------------------------------------------------------------------------------------

def write_parquet(path, texts, labels, text_type=None):
    if text_type is None:
        text_type = pa.string()
    pq.write_table(pa.table({"text": pa.array(texts, text_type), "label": pa.array(labels, pa.int64())}), path)
    return path


@pytest.mark.parametrize("texts, labels, row, words", [
    (["ok", None, "fine"], [0, 1, 2], 1, 'no "text"'),
    (["ok", "fine", "good"], [0, 1, None], 2, 'no "label"'),
    (["ok", " \u3000\n", "good"], [0, 1, 2], 1, "whitespace-only"),
    (["", "fine", "good"], [0, 1, 2], 0, "empty document"),
    (["ok", "fine", "good"], [0, -3, 2], 1, ">= 0"),
])
def test_a_bad_parquet_row_is_an_error_naming_file_and_row(tmp_path, texts, labels, row, words):
    path = write_parquet(tmp_path / "bad.parquet", texts, labels)
    with pytest.raises(DatasetError) as info:
        load(path, "raise")
    message = one_line(info)
    assert message.startswith(f"{path} row {row}: ") and words in message
    corpus = load(path, "skip")
    assert corpus.skipped == 1 and corpus.problems[0].startswith(f"{path} row {row}: ")
    assert list(corpus.texts) == [t for i, t in enumerate(texts) if i != row]
    assert list(corpus.labels) == [lab for i, lab in enumerate(labels) if i != row]


def test_parquet_binary_text_is_decoded_and_bad_bytes_named(tmp_path):
    path = write_parquet(tmp_path / "bin.parquet", ["café".encode(), b"\xc3\x28", b"ok"], [0, 1, 2], pa.binary())
    with pytest.raises(DatasetError, match=r"row 1: not UTF-8 \(byte 0xc3 at offset 0\)"):
        load(path, "raise")
    assert load(path, "skip").texts == ("café", "ok")


def test_a_folder_of_parquet_files_is_read_in_name_order(tmp_path):
    write_parquet(tmp_path / "b.parquet", ["b0", "b1"], [1, 1])
    write_parquet(tmp_path / "a.parquet", ["a0"], [0])
    assert resolve(tmp_path) == ("parquet", tmp_path)
    corpus = load(tmp_path, "raise")
    assert corpus.texts == ("a0", "b0", "b1") and corpus.labels == (0, 1, 1)


@pytest.mark.parametrize("columns, words", [
    ({"text": ["a", "b"]}, "no column label"),
    ({"body": ["a", "b"], "label": [0, 1]}, "no column text"),
    ({"id": [0, 1]}, "no column text or label"),
])
def test_parquet_without_a_text_or_label_column_is_a_one_line_error(tmp_path, columns, words):
    path = tmp_path / "columns.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DatasetError) as info:
        load(path, "raise")
    message = one_line(info)
    assert message.startswith(str(path)) and words in message


@pytest.mark.parametrize("table, words", [
    (pa.table({"text": ["a"], "label": pa.array([1.0])}), "label must hold integers"),
    (pa.table({"text": ["a"], "label": pa.array(["1"])}), "label must hold integers"),
    (pa.table({"text": pa.array([3]), "label": pa.array([1])}), "text must hold strings"),
])
def test_parquet_columns_of_the_wrong_type_are_errors(tmp_path, table, words):
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    with pytest.raises(DatasetError, match=words) as info:
        load(path, "skip")
    assert one_line(info).startswith(str(path))


def test_a_file_that_is_not_parquet_is_a_one_line_error(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"PAR1 but not really\nsecond line")
    with pytest.raises(DatasetError) as info:
        load(path, "raise")
    assert one_line(info).startswith(str(path))


# Sources -------------------------------------------------------------------------------------

def test_a_missing_path_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetError) as info:
        load(tmp_path / "nowhere", "raise")
    assert one_line(info) == f"{tmp_path / 'nowhere'}: no such file or folder"


def test_a_folder_without_a_corpus_is_a_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load(tmp_path, "raise")
    message = one_line(info)
    assert message.startswith(str(tmp_path)) and "corpus.jsonl" in message


def test_an_empty_shards_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "shards").mkdir()
    with pytest.raises(DatasetError) as info:
        load(tmp_path, "raise")
    assert one_line(info).startswith(str(tmp_path / "shards"))


def test_a_corpus_folder_reads_the_same_by_folder_jsonl_and_shards(text_corpus):
    root = text_corpus.root
    assert resolve(root) == ("jsonl", root / "corpus.jsonl")
    assert len(list((root / "shards").glob("*.parquet"))) >= 2
    by_folder = load(root, "raise")
    by_jsonl = load(root / "corpus.jsonl", "raise")
    by_shards = load(root / "shards", "raise")
    assert len(by_folder) == 300
    assert by_folder.texts == by_jsonl.texts == by_shards.texts
    assert by_folder.labels == by_jsonl.labels == by_shards.labels == tuple(i % 3 for i in range(300))
    records = [json.loads(line) for line in (root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert by_folder.texts == tuple(r["text"] for r in records)


def test_a_label_beyond_int64_is_refused_naming_the_line(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [GOOD[0], b'{"text": "huge", "label": %d}' % 2**63, GOOD[1]])
    with pytest.raises(DatasetError) as exc_info:
        load(path, "raise")
    assert "big.jsonl" in one_line(exc_info) and "line 2" in str(exc_info.value)
    assert "must be < 2**63" in str(exc_info.value)
    corpus = load(path, "skip")
    assert corpus.skipped == 1 and corpus.labels == (0, 2)
    largest = write_jsonl(tmp_path / "edge.jsonl", [b'{"text": "edge", "label": %d}' % (2**63 - 1)])
    assert load(largest, "raise").labels == (2**63 - 1,)
