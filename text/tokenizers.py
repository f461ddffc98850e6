"""Tokenizers by name, framework-free: "spacy", "nltk" and "regex".

- "spacy": the rule-based tokenizer of ``spacy.blank("en")`` (no model package); tokens that
  are only whitespace (spaCy keeps runs of extra spaces, tabs and newlines) are dropped.
- "nltk": NLTK's ``TreebankWordTokenizer`` (no data package; ``word_tokenize`` would need
  punkt). It treats the document as one sentence and turns ``"`` into ``` `` ``` / ``''``.
- "regex": every punctuation character is a token, every maximal run of other non-space
  characters is a token. The character classes are listed here as code point ranges and
  written out twice from the same lists: for Python's ``re`` and for RE2, so that the
  tf.data pipeline runs it as native TensorFlow string ops (no Python, no GIL) and gets the
  same tokens (tested on awkward text).

Lowercasing, when asked for, is ``str.lower()`` on the whole document before tokenizing
(TensorFlow's ``tf.strings.lower(encoding="utf-8")`` gives the same, final sigma included,
except after a NUL character, for letters newer than TensorFlow's ICU and in Turkish,
Azerbaijani and Lithuanian locales: ``tf_pipeline`` lowercases such documents in Python).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from feedbench.pipelines.core.errors import ConfigError, MissingDependencyError

TOKENIZERS = ("nltk", "regex", "spacy")

# Exactly the characters for which Python's str.isspace() is true (tests/text check it).
SPACE_RANGES = (
    (0x09, 0x0D), (0x1C, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
)
# ASCII punctuation; Latin-1, general, CJK and fullwidth punctuation (no space among them).
PUNCT_RANGES = (
    (0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E),
    (0xA1, 0xA1), (0xA7, 0xA7), (0xAB, 0xAB), (0xB6, 0xB7), (0xBB, 0xBB), (0xBF, 0xBF),
    (0x2010, 0x2027), (0x2030, 0x205E),
    (0x3001, 0x3003), (0x3008, 0x3011), (0x3014, 0x301F),
    (0xFF01, 0xFF0F), (0xFF1A, 0xFF20), (0xFF3B, 0xFF40), (0xFF5B, 0xFF65),
)


def _python_class(ranges: tuple[tuple[int, int], ...]) -> str:
    def escape(c: int) -> str:
        return f"\\U{c:08x}" if c > 0xFFFF else f"\\u{c:04x}"

    return "".join(escape(lo) if lo == hi else f"{escape(lo)}-{escape(hi)}" for lo, hi in ranges)


def re2_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """The character class body for RE2 (TensorFlow's regex ops)."""
    return "".join(f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in ranges)


_SPACE, _PUNCT = _python_class(SPACE_RANGES), _python_class(PUNCT_RANGES)
REGEX_TOKEN = re.compile(f"[^{_SPACE}{_PUNCT}]+|[{_PUNCT}]")


def regex_tokenize(text: str) -> list[str]:
    """The "regex" rule in Python."""
    return REGEX_TOKEN.findall(text)


def _spacy() -> Callable[[str], list[str]]:
    try:
        import spacy
    except ImportError as exc:
        raise MissingDependencyError("tokenizer 'spacy' needs spaCy: pip install spacy") from exc
    tokenizer = spacy.blank("en").tokenizer
    return lambda text: [token.text for token in tokenizer(text) if not token.is_space]


def _nltk() -> Callable[[str], list[str]]:
    try:
        from nltk.tokenize import TreebankWordTokenizer
    except ImportError as exc:
        raise MissingDependencyError("tokenizer 'nltk' needs NLTK: pip install nltk") from exc
    return TreebankWordTokenizer().tokenize


@functools.cache
def _rule(name: str) -> Callable[[str], list[str]]:
    """The tokenizing function of `name`, built once per process (spaCy's takes ~0.3 s)."""
    if name == "spacy":
        return _spacy()
    if name == "nltk":
        return _nltk()
    return regex_tokenize


def check_name(name: object) -> None:
    if name not in TOKENIZERS:
        raise ConfigError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {name!r}")


def tokenize(text: str, name: str, *, lowercase: bool) -> list[str]:
    """The tokens of `text` under tokenizer `name`, lowercased first if asked."""
    check_name(name)
    return _rule(name)(text.lower() if lowercase else text)


def tokenizer(name: str, *, lowercase: bool) -> Callable[[str], list[str]]:
    """A picklable one-argument tokenizing function (for DataLoader workers)."""
    check_name(name)
    return functools.partial(tokenize, name=name, lowercase=lowercase)


# The packages each tokenizer imports, for a process that will tokenize to import ahead.
_MODULES = {"spacy": ("spacy",), "nltk": ("nltk.tokenize",), "regex": ()}


def modules(name: str) -> tuple[str, ...]:
    """The modules tokenizer `name` imports (none for "regex")."""
    check_name(name)
    return _MODULES[name]
