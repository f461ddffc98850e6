"""The "regex" tokenizer as TensorFlow ops against the Python rule, token for token."""

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from feedbench.pipelines.core.frameworks import import_tensorflow
from feedbench.text import tokenize
from feedbench.text.tf_pipeline import _lowered_otherwise, _lowers_natively, native_regex_tokens

tf = import_tensorflow()

AWKWARD = [
    "Don't can't won't y'all rock'n'roll o'clock l'homme",
    "state-of-the-art e-mail well—known 1990–2000 non‐breaking‑hyphen",
    "U.S.A. e.g. i.e. Dr. Smith, Ph.D., etc... a.m./p.m.",
    "https://example.com/a/b?q=1&r=2#frag user+tag@example.org C:\\Users\\x ~/.bashrc",
    "café naïve résumé Ångström Øre Æsir façade",
    "e\u0301 cafe\u0301 n\u0303 a\u0308\u0304 Z\u0351\u036b \u0301leading !\u0301 .\u0308",
    "日本語のテキスト。中文，标点！「引用」『二重』【括弧】〜 〈角〉《书名》",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇩🇪 ❤️ #️⃣ 1️⃣ 🧑🏿‍🚀!",
    "tabs\tand\nnewlines\r\nand\rreturns\x0bvt\x0cff  double  spaces ",
    "nbsp\u00a0x\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200ay\u3000ideo\u0085nel"
    "\x1cfs\x1dgs\x1ers\x1fus\u2028ls\u2029ps\u202fnnbsp\u205fmmsp\u1680ogham",
    "zero width: a\u200bb c\u200cd e\u200df \ufeffbom \u180emvs \u2060wj \u00adshy",
    "fullwidth！＂＃＄％＆＇（）＊＋，－．／：；＜＝＞？＠［＼］＾＿｀｛｜｝～｡｢｣､･ ＡＢＣ ａｂｃ １２３",
    "“curly” ‘quotes’ „German“ «French» ‹single› ‚low‘ \"straight\" 'single'",
    "1,000,000 3.14159 1 000 000 1'000'000 1_000 ١٢٣ ½ ²³ 10% $5 €3,50 -7 +8",
    "İSTANBUL Istanbul ıi İi DİYARBAKIR IĞDIR i̇",
    "ΟΔΟΣ ΟΔΟΣ. ΑΣ'Β Σ ΣΑΣ ΟΔΟΣ\u0301 Α.Σ ΑΣ-Β ΌΣΟΙ",
    "Straße STRASSE ẞ groß GROẞ",
    "HeLLo WoRLD McDonald's iPhone ǅ ǈ ǋ ﬁ ﬃ Ⅻ Ⓐ ΑΒΓ АБВ ԱԲԳ",
    "مرحبا بالعالم، كيف حالك؟ שלום, עולם! नमस्ते, दुनिया। สวัสดีชาวโลก 안녕하세요, 세계!",
    "...!!!??? --- ((())) [x] {y} <z> a/b\\c a|b ~^`@#$%&*_+= §¶·¡¿«» ‰′″※‼‽⁂⁇⁉⁞",
    "\x01\x02\x7f\x80\x9f \ue000 \U0010fffd 𝐀𝐁𝐂 𝔄 ℌ ℍ ℵ ∑∫√ ≠ ≤",
    "a NUL\x00INSIDE ΑΣ\x00Β and a trailing one\x00",
    "Unicode 14 letters: Ⱟ Ꟁ Ꟑ 𐕰𐕱𐕲 next to ΑΣ",
    "   leading and trailing spaces   ",
    "x",
]


def python_tokens(text, lowercase):
    return [token.encode("utf-8") for token in tokenize(text, "regex", lowercase=lowercase)]


def native(texts, lowercase):
    return native_regex_tokens(texts, lowercase).to_list()


def long_document(n_chars, seed):
    """Words, punctuation and spaces of many scripts, `n_chars` characters."""
    rng = random.Random(seed)
    pieces = [w for text in AWKWARD for w in text.split(" ")] + [" ", "\n", "\u3000", ", ", ". "]
    out, size = [], 0
    while size < n_chars:
        piece = rng.choice(pieces)
        out.append(piece)
        size += len(piece)
    return "".join(out)[:n_chars]


@pytest.mark.parametrize("lowercase", [True, False])
def test_the_generated_corpus_tokenizes_the_same(text_corpus, lowercase):
    lines = (text_corpus.root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    assert len(texts) == 300
    assert native(texts, lowercase) == [python_tokens(text, lowercase) for text in texts]


@pytest.mark.parametrize("lowercase", [True, False])
def test_awkward_strings_tokenize_the_same(lowercase):
    documents = AWKWARD + [long_document(100_000, seed=1)]
    for text in documents:  # one at a time: the scalar path that the pipeline's map takes
        got = native_regex_tokens(text, lowercase).numpy().tolist()
        assert got == python_tokens(text, lowercase), text[:80]
    assert native(documents, lowercase) == [python_tokens(text, lowercase) for text in documents]
    if lowercase:  # all but the strings with a NUL or a letter newer than ICU's are lowercased by ICU
        others = set(_lowered_otherwise())
        natively = tf.strings.regex_full_match(documents, _lowers_natively()).numpy().tolist()
        assert natively == [not others.intersection(text) for text in documents]
        assert sum(natively) >= len(documents) - 3


def test_every_character_is_classed_and_lowercased_as_in_python():
    # Each code point between two letters: one token or three, as Python's classes say; and
    # every one but the probed exceptions lowercased by ICU exactly as by str.lower().
    others = set(_lowered_otherwise())
    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"A{c}b" for c in chars]
    assert native(texts, False) == [python_tokens(text, False) for text in texts]
    plain = [text for text, c in zip(texts, chars) if c not in others]
    lowered = tf.strings.lower(plain, encoding="utf-8").numpy().tolist()
    assert [text.decode("utf-8") for text in lowered] == [text.lower() for text in plain]


def test_the_lowercasing_exceptions_are_few_and_include_nul():
    others = _lowered_otherwise()
    assert others[0] == "\x00" and len(others) < 100
    locale = " ".join(os.environ.get(name, "") for name in ("LC_ALL", "LC_MESSAGES", "LANG"))
    assert "I" not in others or any(code in locale for code in ("tr", "az", "lt"))
    assert tf.strings.lower("ab\x00CD", encoding="utf-8").numpy() == b"ab"  # TensorFlow's cut, worked around
    assert native_regex_tokens("ab\x00CD", True).numpy().tolist() == [b"ab\x00cd"]


@pytest.mark.parametrize("locale", ["tr_TR.UTF-8", "lt_LT.UTF-8"])
def test_a_turkish_or_lithuanian_locale_does_not_change_the_tokens(locale):
    """ICU lowercases I, İ (tr) and I, J, Į with accents, Ì, Í, Ĩ (lt) by the locale; Python
    never does: such documents are lowercased in Python."""
    script = textwrap.dedent(
        """
        import torch  # before TensorFlow
        from feedbench.pipelines.core.frameworks import import_tensorflow
        from feedbench.text import tokenize
        from feedbench.text.tf_pipeline import _lowered_otherwise, native_regex_tokens

        tf = import_tensorflow()
        texts = ["ISTANBUL İzmir IĞDIR", "I\\u0300 J\\u0301 Į\\u0303 Ì Í Ĩ", "Iowa is in the USA"]
        assert tf.strings.lower("I Ì", encoding="utf-8").numpy().decode() != "i ì", "ICU ignored the locale"
        assert "I" in _lowered_otherwise()
        for text in texts:
            got = native_regex_tokens(text, True).numpy().tolist()
            assert got == [t.encode() for t in tokenize(text, "regex", lowercase=True)], (text, got)
        print("same")
        """
    )
    env = {**os.environ, "LANG": locale, "LC_ALL": locale}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr[-2000:]
