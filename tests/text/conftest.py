"""Awkward text, shared by the text tests: the framework-free core, the torch/tf parity tests
and the native-regex tests.

`awkward_texts` are valid documents (each has a non-space character) that tokenizers and
lowercasing tend to get wrong; `awkward_corpus` holds them as a JSONL corpus with labels
0..2. Records a reader must refuse (empty and whitespace-only documents among them) are
apart, in `awkward_bad_records`, since the parity tests need valid documents only.
"""

import json

import pytest

LONG_CHARS = 100_000


def _long_document() -> str:
    """A 100,000-character document, the same every time: words, numbers and punctuation
    from a fixed cycle, so that it has thousands of tokens (far more than any max_len)."""
    words = ("the", "State-of-the-art", "don't", "café", "1,000.50", "U.S.A.", "日本語", "ΟΔΟΣ", "naïve",
             "e.g.,", "«quoted»", "x\u00a0y", "tab\there", "(paren)", "👍🏽", "straße", "İstanbul", "—", "3.14e-10")
    parts, size, i = [], 0, 0
    while size < LONG_CHARS:
        word = f"{words[i % len(words)]}{i % 97}" if i % 7 == 0 else words[i % len(words)]
        sep = "\n" if i % 53 == 52 else " "
        parts.append(word + sep)
        size += len(word) + 1
        i += 1
    return "".join(parts)[:LONG_CHARS - 1] + "."


_AWKWARD = (
    # contractions and apostrophes
    "I don't know; y'all love rock'n'roll, said O'Neill. It's Tom's, isn't it? We'd've gone.",
    "Don’t stop — it’s O’Brien’s ’90s mixtape.",
    # hyphens and dashes
    "A state-of-the-art model (1990–1995) with an em—dash, a minus −5 and a non‑breaking‑hyphen.",
    "--double-dash-- and trailing hyphen- and -leading",
    # abbreviations
    "The U.S.A., e.g. Dr. Smith, Mrs. Jones, etc. arrived at 5 p.m. on Jan. 3rd.",
    # URLs and e-mails
    "See https://example.com/a?b=c&d=e#f or mail foo.bar@baz.org (or <http://x.y/z_w>).",
    # accents and combining marks
    "café naïve résumé coöperate Zoë e\u0301 vs \u00e9, n\u0303 and a\u0308\u0301 stacked",
    # CJK with its punctuation
    "日本語のテキスト。中文，标点！「引用」【括弧】『二重』〜波",
    "한국어 텍스트입니다. 混合 mixed テキスト123。",
    # emoji: modifiers, ZWJ sequences, flags, keycaps, variation selectors
    "Nice 👍🏽 family 👨\u200d👩\u200d👧\u200d👦 flags 🇯🇵🇺🇸 "
    "keycap 1\ufe0f\u20e3 heart ❤\ufe0f rainbow 🏳\ufe0f\u200d🌈!",
    "emoji-only:😀😃😄",
    # control whitespace
    "tabs\tbetween\twords\nnew line\r\nwindows line\rcarriage\x0bvertical\x0cform feed",
    # unicode spaces
    "nbsp\u00a0here\u2000en\u2001em\u2002a\u2003b\u2004c\u2005d\u2006e\u2007f\u2008g\u2009h\u200ai",
    "ideographic\u3000space next\u0085line ogham\u1680mark narrow\u202fnbsp math\u205fspace ls\u2028ps\u2029end",
    "file\x1cgroup\x1drecord\x1eunit\x1fseparators",
    "zero\u200bwidth and BOM\ufeffinside (not spaces)",
    # fullwidth punctuation and letters
    "ＦＵＬＬ　ｗｉｄｔｈ！（全角）？：；＂＇［］｛｝＠＃",
    # curly and other quotes
    "“Curly double” and ‘curly single’, «guillemets» and „low‑9“ and ‹single›",
    # numbers with separators
    "Numbers: 1,000.50 and 3.14e-10, 1.000,50 €, -42, +7%, 1/2, ½, 10^6, $5.99, #1",
    # case mapping traps: Turkish dotted I, final sigma, sharp s, ligatures
    "İstanbul, DİYARBAKIR and ı dotless; ΟΔΟΣ ΣΟΦΟΣ; Straße STRASSE ß ẞ; ﬁne ﬂow",
    "ΟΔΟΣ",
    # single characters
    "a",
    "Z",
    "7",
    ".",
    "é",
    "日",
    "😀",
    "İ",
    "ẞ",
    # punctuation only
    "!!!",
    "...?!",
    "—–-",
    "()[]{}<>",
    "。，、！？",
    "\"'`",
    # leading, trailing and repeated whitespace around content
    "  \t padded \n ",
    "\u3000x\u3000",
)


@pytest.fixture(scope="session")
def awkward_texts():
    """Valid documents that tokenizers and lowercasing tend to get wrong; the last one is a
    deterministic 100,000-character document."""
    return [*_AWKWARD, _long_document()]


@pytest.fixture(scope="session")
def awkward_corpus(tmp_path_factory, awkward_texts):
    """`awkward_texts` as a JSONL corpus: record i is ``{"text": awkward_texts[i], "label": i % 3}``.

    Written with ``ensure_ascii=False``, so non-ASCII characters (U+0085, U+2028 among them)
    are raw UTF-8 in the file; control characters are JSON escapes.
    """
    path = tmp_path_factory.mktemp("awkward") / "corpus.jsonl"
    lines = [json.dumps({"text": text, "label": i % 3}, ensure_ascii=False) for i, text in enumerate(awkward_texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _line(record) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


@pytest.fixture(scope="session")
def awkward_bad_records():
    """JSONL lines a reader must refuse: ``(what, line bytes, words its message contains)``."""
    return [
        ("not UTF-8", b'{"text": "caf\xe9", "label": 0}', "not UTF-8"),
        ("lone surrogate", b'{"text": "a\\ud800b", "label": 0}', "surrogate"),
        ("empty", _line({"text": "", "label": 0}), "empty document"),
        ("spaces", _line({"text": "   ", "label": 0}), "whitespace-only"),
        ("tabs and newlines", _line({"text": "\t\n\r\n", "label": 1}), "whitespace-only"),
        ("unicode spaces", _line({"text": "\u00a0\u2000\u200a\u3000\u0085\u2028\u1680", "label": 1}),
         "whitespace-only"),
        ("separators", _line({"text": "\x1c\x1d\x1e\x1f", "label": 2}), "whitespace-only"),
        ("no label", _line({"text": "fine text"}), 'no "label"'),
        ("null label", _line({"text": "fine text", "label": None}), 'no "label"'),
        ("label str", _line({"text": "fine text", "label": "1"}), '"label" must be an integer'),
        ("label float", _line({"text": "fine text", "label": 1.0}), '"label" must be an integer'),
        ("label bool", _line({"text": "fine text", "label": True}), '"label" must be an integer'),
        ("label negative", _line({"text": "fine text", "label": -1}), '"label" must be >= 0'),
        ("no text", _line({"label": 0}), 'no "text"'),
        ("text not a string", _line({"text": 5, "label": 0}), '"text" must be a string'),
        ("not JSON", b'{"text": "unterminated, "label": 0', "not JSON"),
        ("JSON list", _line(["fine text", 0]), "got list"),
        ("JSON string", _line("fine text"), "got str"),
    ]


@pytest.fixture(scope="session")
def documents(text_corpus):
    """(texts, labels) of the session's text corpus (tests/conftest.py), in source order."""
    from ._helpers import read_documents

    return read_documents(text_corpus.root)
