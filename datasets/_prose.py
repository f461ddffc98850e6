"""Procedural English-like prose: labelled documents for benchmarking tokenizers.

A tokenizer's speed depends on what it reads: how long the words are, how many distinct
types it meets (its cache and vocabulary look-ups), how much punctuation, case, numbers,
contractions and non-ASCII it has to split. Uniform random words get all of that wrong.
This module makes a Zipf-distributed lexicon whose head is real English function words and
whose tail is pronounceable pseudo-words, and writes documents from it with sentences,
punctuation, numbers, contractions, URLs and paragraphs, in a few hundred microseconds each.
A label boosts a class-specific set of topic words, so a classifier has something to learn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# The head of an English frequency list (COCA/BNC order, roughly): real words where the
# counts are highest, so the most common tokens look and split like English.
_FUNCTION_WORDS = (
    "the of and to a in is that it for I was on with as you he be at by this are have not "
    "but from or his they we had an she which her were all their one been has there can "
    "would will if more what about so its when who out up no them my said do some time "
    "into also than other only new could people him two these first like then any now just "
    "over may our year most your me how after even make very made well many back where "
    "because through work should much way before between good us such those state world "
    "each see down get own know go both take here same life three last being while under "
    "still long part might day think must school come great little system high does going "
    "without against never government around place small number public another however "
    "again house few home old during right country water"
).split()
_FUNCTION_WORDS = tuple(_FUNCTION_WORDS)

# Zipf-Mandelbrot p(r) ~ (r + b)^-s, with s as fitted to English corpora. The offset flattens
# the head so that "the" is ~5% of tokens, as in English, instead of a pure Zipf's 12%.
_ZIPF_EXPONENT = 1.07
_ZIPF_OFFSET = 1.5

# Syllable parts with rough English weights: (spelling, weight).
_ONSETS = (
    ("b", 5), ("c", 5), ("d", 5), ("f", 4), ("g", 3), ("h", 4), ("j", 1), ("k", 2), ("l", 5),
    ("m", 5), ("n", 4), ("p", 5), ("r", 5), ("s", 6), ("t", 6), ("v", 2), ("w", 3), ("y", 1),
    ("z", 1), ("bl", 1), ("br", 2), ("ch", 2), ("cl", 1), ("cr", 1), ("dr", 1), ("fl", 1),
    ("fr", 1), ("gl", 1), ("gr", 2), ("pl", 2), ("pr", 3), ("qu", 1), ("sh", 2), ("sk", 1),
    ("sl", 1), ("sm", 1), ("sn", 1), ("sp", 2), ("st", 3), ("str", 1), ("sw", 1), ("th", 3),
    ("tr", 2), ("wh", 1),
)
_NUCLEI = (
    ("a", 10), ("e", 10), ("i", 8), ("o", 8), ("u", 4), ("ai", 1), ("ea", 2), ("ee", 1),
    ("ie", 1), ("oa", 1), ("oo", 1), ("ou", 2), ("ay", 1), ("ow", 1),
)
_CODAS = (
    ("", 30), ("b", 1), ("ck", 2), ("d", 3), ("g", 1), ("l", 3), ("ll", 2), ("m", 3), ("n", 6),
    ("nd", 2), ("ng", 2), ("nk", 1), ("nt", 3), ("p", 1), ("r", 5), ("rd", 1), ("rk", 1),
    ("rm", 1), ("rn", 1), ("rt", 1), ("s", 3), ("sh", 1), ("ss", 1), ("st", 2), ("t", 4),
    ("th", 1), ("x", 1),
)
_SUFFIXES = (
    ("", 45), ("s", 12), ("ing", 7), ("ed", 7), ("er", 5), ("ly", 4), ("tion", 3),
    ("ness", 2), ("ment", 2), ("al", 2), ("able", 1.5), ("ity", 1.5), ("ous", 1.5),
    ("ive", 1.5), ("ize", 1), ("ful", 1), ("less", 1), ("ist", 1),
)
_SYLLABLE_COUNTS = ((1, 25), (2, 45), (3, 22), (4, 8))
_COMPOUND_HEADS = (
    "well", "self", "high", "low", "long", "short", "full", "half", "non", "co", "pre",
    "post", "anti", "cross", "multi", "over", "under", "old", "world", "first",
)
_ACCENTS = {
    "a": "áàâ", "e": "éèê", "i": "íï", "o": "óôö", "u": "úü", "n": "ñ", "c": "ç",
}
_NAME_ENDINGS = ("", "", "", "son", "ton", "ia", "ville", "er", "ez", "berg")
_UPPER_CONSONANTS, _UPPER_VOWELS = "BCDFGKLMNPRSTVZ", "AEIOU"
# Shares of the pseudo-word types that are of a special kind (the rest are plain words).
_KINDS = (
    ("plain", 0.94), ("compound", 0.025), ("proper", 0.025), ("acronym", 0.005), ("accented", 0.005),
)
# Random syllables can spell slurs and obscenities; generated text is read by people too.
_BLOCKED = re.compile("cunt|fuck|shit|nigg|fag|rape|cock|dick|twat|slut|whore|piss")
# The mid-frequency ranks that topic words are drawn from: frequent enough to matter, rare
# enough that a 5% boost stands out against the background.
_TOPIC_RANKS = (300, 20_300)
_TOPIC_SIZE = 50


def _table(pairs: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Splits (item, weight) pairs into an object array and a cumulative distribution."""
    items = np.empty(len(pairs), dtype=object)
    items[:] = [item for item, _ in pairs]
    weights = np.array([w for _, w in pairs], dtype=np.float64)
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0
    return items, cumulative


def _pick(rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
    """Draws `size` items of a weighted table: one uniform and a binary search each."""
    items, cumulative = table
    return items[np.searchsorted(cumulative, rng.random(size), side="right")]


_ONSET_TABLE, _NUCLEUS_TABLE, _CODA_TABLE = _table(_ONSETS), _table(_NUCLEI), _table(_CODAS)
_SUFFIX_TABLE, _SYLLABLE_TABLE, _KIND_TABLE = _table(_SUFFIXES), _table(_SYLLABLE_COUNTS), _table(_KINDS)



def _roots(rng: np.random.Generator, count: int) -> list[str]:
    """Pronounceable roots: consonant-vowel syllables, the last one closed by a coda."""
    syllables = _pick(rng, _SYLLABLE_TABLE, count).tolist()
    onsets = _pick(rng, _ONSET_TABLE, 4 * count).reshape(count, 4).tolist()
    nuclei = _pick(rng, _NUCLEUS_TABLE, 4 * count).reshape(count, 4).tolist()
    codas = _pick(rng, _CODA_TABLE, count).tolist()
    # Some longer words open on a vowel, as "idea" or "open" do.
    vowel_first = (rng.random(count) < 0.15).tolist()
    roots = []
    for k, onset, nucleus, coda, bare in zip(syllables, onsets, nuclei, codas, vowel_first):
        parts = [o + v for o, v in zip(onset[:k], nucleus[:k])]
        if bare and k > 1:
            parts[0] = nucleus[0]
        roots.append("".join(parts) + coda)
    return roots


def _with_suffix(root: str, suffix: str) -> str:
    """Attaches `suffix` with English spelling repairs ("blate" + "ing" -> "blating")."""
    if suffix == "s" and root.endswith(("s", "sh", "ch", "x")):
        return root + "es"
    if suffix and suffix[0] in "aeiou" and root[-1] in "aeiou":
        # Avoid vowel pile-ups: drop a final e as English does, else add a consonant.
        return (root[:-1] if root[-1] == "e" else root + "n") + suffix
    return root + suffix


def _acronym(rng: np.random.Generator) -> str:
    """An upper-case acronym: pronounceable ("NASA"-like) or spelled out ("FBI"-like)."""
    if rng.random() < 0.5:
        consonants = rng.integers(len(_UPPER_CONSONANTS), size=2)
        vowels = rng.integers(len(_UPPER_VOWELS), size=2)
        return "".join(_UPPER_CONSONANTS[c] + _UPPER_VOWELS[v] for c, v in zip(consonants, vowels))
    letters = rng.integers(26, size=int(rng.integers(2, 6)))
    return "".join(chr(ord("A") + int(i)) for i in letters)


def _accented(rng: np.random.Generator, word: str) -> str:
    """`word` with one letter given a diacritic ("cafe" -> "café"); unchanged if none fits."""
    places = [i for i, c in enumerate(word) if c in _ACCENTS]
    if not places:
        return word
    i = places[int(rng.integers(len(places)))]
    marks = _ACCENTS[word[i]]
    return word[:i] + marks[int(rng.integers(len(marks)))] + word[i + 1 :]


def _word(rng: np.random.Generator, kind: str, root: str, suffix: str, other: str) -> str:
    """One word type of `kind` from a root; `other` is a second root for compounds."""
    if kind == "plain":
        return _with_suffix(root, suffix)
    if kind == "compound":
        head = _COMPOUND_HEADS[int(rng.integers(len(_COMPOUND_HEADS)))] if rng.random() < 0.5 else other
        return f"{head}-{_with_suffix(root, suffix)}"
    if kind == "proper":
        return root.capitalize() + _NAME_ENDINGS[int(rng.integers(len(_NAME_ENDINGS)))]
    if kind == "acronym":
        return _acronym(rng)
    return _accented(rng, _with_suffix(root, suffix))


def _pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """`count` distinct pseudo-words, none equal (ignoring case) to a word in `taken`."""
    found: dict[str, str] = {}
    while len(found) < count:
        batch = int(1.2 * (count - len(found))) + 64
        roots = _roots(rng, batch)
        suffixes = _pick(rng, _SUFFIX_TABLE, batch).tolist()
        kinds = _pick(rng, _KIND_TABLE, batch).tolist()
        for i in range(batch):
            word = _word(rng, kinds[i], roots[i], suffixes[i], roots[i - 1])
            key = word.lower()
            if key not in taken and key not in found and not _BLOCKED.search(key):
                found[key] = word
                if len(found) == count:
                    break
    return list(found.values())


def _by_length(rng: np.random.Generator, words: list[str]) -> list[str]:
    """Orders words roughly shortest first: frequent words are short (Zipf's abbreviation law)."""
    keys = np.array([len(w) for w in words], dtype=np.float64) + rng.normal(0.0, 2.0, len(words))
    return [words[i] for i in np.argsort(keys, kind="stable")]


def _zipf(size: int) -> np.ndarray:
    """Zipf-Mandelbrot probabilities over ranks 1..size, summing to 1."""
    weights = (np.arange(1, size + 1, dtype=np.float64) + _ZIPF_OFFSET) ** -_ZIPF_EXPONENT
    return weights / weights.sum()


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Word types with Zipf frequencies; build one with `Lexicon.build(seed)`.

    Attributes:
        seed: The seed it was built from.
        words: Word types, index 0 most frequent; distinct even ignoring case.
        probabilities: Probability of each type (float64, read-only, sums to 1).
        topic_pool: Indices of mid-frequency types, shuffled; `topic_words` slices it by label.
    """

    seed: int
    words: tuple[str, ...] = field(repr=False)
    probabilities: np.ndarray = field(repr=False)
    topic_pool: np.ndarray = field(repr=False)
    # Derived for fast sampling: the cumulative distribution and the words as an object array.
    cumulative: np.ndarray = field(init=False, repr=False)
    array: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.probabilities):
            raise ValueError(f"Lexicon: {len(self.words)} words but {len(self.probabilities)} probabilities")
        if not np.isclose(float(np.sum(self.probabilities)), 1.0):
            raise ValueError("Lexicon: probabilities must sum to 1")
        if len(self.topic_pool) < _TOPIC_SIZE:
            raise ValueError(f"Lexicon: topic pool of {len(self.topic_pool)} types, need {_TOPIC_SIZE}")
        cumulative = np.cumsum(self.probabilities)
        # Uniform draws are < 1, so a last bound of exactly 1 keeps searchsorted in range.
        cumulative[-1] = 1.0
        array = np.empty(len(self.words), dtype=object)
        array[:] = self.words
        for values in (self.probabilities, self.topic_pool, cumulative, array):
            values.flags.writeable = False
        object.__setattr__(self, "cumulative", cumulative)
        object.__setattr__(self, "array", array)

    @classmethod
    def build(cls, seed: int, size: int = 50_000) -> Lexicon:
        """English function words, then pseudo-words, with Zipf probabilities.

        Args:
            seed: Seeds the pseudo-words, their order and the topic pool.
            size: Number of word types, at least 1,000.
        """
        if size < 1_000:
            raise ValueError(f"Lexicon.build: size={size}, need at least 1000")
        rng = np.random.default_rng(seed)
        taken = {w.lower() for w in _FUNCTION_WORDS}
        tail = _by_length(rng, _pseudo_words(rng, size - len(_FUNCTION_WORDS), taken))
        low, high = _TOPIC_RANKS[0], min(_TOPIC_RANKS[1], size)
        topic_pool = low + rng.permutation(high - low)
        return cls(seed, (*_FUNCTION_WORDS, *tail), _zipf(size), topic_pool)


def topic_words(lexicon: Lexicon, label: int) -> np.ndarray:
    """Indices into `lexicon.words` of the topic words that label `label` boosts.

    Labels get disjoint sets while the pool lasts (400 labels at the default size), then wrap.
    """
    if label < 0:
        raise ValueError(f"topic_words: label={label} must be >= 0")
    slot = label % (len(lexicon.topic_pool) // _TOPIC_SIZE)
    return lexicon.topic_pool[slot * _TOPIC_SIZE : (slot + 1) * _TOPIC_SIZE]


# Document lengths in words: lognormal, median 200, sigma 0.8 so that ~2% pass 1,000 words.
_MEDIAN_WORDS, _SIGMA, _MIN_WORDS, _MAX_WORDS = 200, 0.8, 3, 5_000
# Shares of tokens: topic words of the label, and substitutions made after the word draw.
_TOPIC_RATE = 0.05
_CONTRACTION_RATE, _NUMBER_RATE, _POSSESSIVE_RATE, _SHOUT_RATE = 0.025, 0.015, 0.005, 0.003
_MARK_RATE = 0.07  # share of words inside a sentence followed by a comma, ; or :
_ADDRESS_RATE = 0.25  # share of documents with one URL or e-mail address
_SENTENCE_SHAPE, _SENTENCE_SCALE = 3.5, 5.0  # gamma: sentences of ~17 words
_PARAGRAPH_SENTENCES = (3, 8)  # sentences per paragraph, low inclusive, high exclusive
_CONTRACTION_TABLE = _table((
    ("don't", 6), ("it's", 6), ("that's", 4), ("I'm", 4), ("can't", 3), ("didn't", 3),
    ("doesn't", 2), ("isn't", 2), ("won't", 2), ("you're", 2), ("we're", 2), ("they're", 2),
    ("there's", 2), ("wasn't", 1.5), ("we'll", 1), ("they've", 1), ("let's", 1), ("I've", 1),
    ("I'd", 1), ("I'll", 1), ("he's", 1), ("she's", 1), ("wouldn't", 1), ("couldn't", 1),
    ("shouldn't", 1), ("aren't", 1), ("haven't", 1), ("you'll", 1), ("what's", 1),
    ("hasn't", 0.5), ("we've", 0.5), ("o'clock", 0.2),
    # Text from the web mixes in typographic apostrophes.
    ("it\u2019s", 0.6), ("don\u2019t", 0.6), ("I\u2019m", 0.4), ("can\u2019t", 0.3),
))
_INNER_MARK_TABLE = _table(((",", 90), (";", 5), (":", 5)))
_END_MARK_TABLE = _table(((".", 88), ("?", 6), ("!", 4), ("...", 2)))
# Per sentence: (opening, closing, probability) of a span in brackets or quotes.
_ENCLOSURES = (("(", ")", 0.04), ('"', '"', 0.05), ("'", "'", 0.015))


def document_length(rng: np.random.Generator) -> int:
    """Draws a document's length in words: lognormal, median 200, 3 to 5,000."""
    words = rng.lognormal(np.log(_MEDIAN_WORDS), _SIGMA)
    return int(min(max(round(words), _MIN_WORDS), _MAX_WORDS))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _number(kind: float, a: float, b: float) -> str:
    """A number as prose writes it, chosen by `kind` and shaped by `a` and `b` (all in [0, 1))."""
    if kind < 0.30:
        return str(int(10 ** (3 * a)))  # 1..999, small ones most often
    if kind < 0.45:
        return str(1850 + int(180 * a**0.3))  # a year, recent ones most often
    if kind < 0.57:
        return f"{10 ** (2 * a):.{1 + int(2 * b)}f}"  # 3.14
    if kind < 0.70:
        return f"{int(10 ** (3 + 3 * a)):,}"  # 1,000 .. 999,999
    if kind < 0.82:
        return f"{100 * a:.{int(b < 0.3)}f}%"
    if kind < 0.94:
        return f"${10 ** (3 * a):,.2f}" if b < 0.5 else f"${int(10 ** (1 + 4 * a)):,}"
    return _ordinal(1 + int(30 * a))


def _draw_words(rng: np.random.Generator, lexicon: Lexicon, label: int, count: int) -> np.ndarray:
    """`count` words from the Zipf distribution, a share swapped for the label's topic words."""
    u = rng.random((2, count))
    index = np.searchsorted(lexicon.cumulative, u[0], side="right")
    topical = np.flatnonzero(u[1] < _TOPIC_RATE)
    topics = topic_words(lexicon, label)
    index[topical] = topics[rng.integers(len(topics), size=topical.size)]
    return lexicon.array[index]


def _substitute(rng: np.random.Generator, tokens: np.ndarray) -> None:
    """Swaps a few tokens in place for contractions, numbers, possessives and SHOUTING."""
    u = rng.random(tokens.size)
    bounds = np.cumsum((_CONTRACTION_RATE, _NUMBER_RATE, _POSSESSIVE_RATE, _SHOUT_RATE))
    kind = np.searchsorted(bounds, u, side="right")
    contractions = np.flatnonzero(kind == 0)
    tokens[contractions] = _pick(rng, _CONTRACTION_TABLE, contractions.size)
    numbers = np.flatnonzero(kind == 1)
    shapes = rng.random((numbers.size, 3)).tolist()
    tokens[numbers] = [_number(*shape) for shape in shapes]
    possessives = np.flatnonzero(kind == 2)
    tokens[possessives] = tokens[possessives] + "'s"
    shouts = np.flatnonzero(kind == 3)
    tokens[shouts] = [t.upper() for t in tokens[shouts]]


def _sentences(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits `count` words into sentences: (first, last) word index of each."""
    # Sentences have 3 words or more, so count // 3 + 1 lengths always cover the document.
    lengths = np.maximum(3, rng.gamma(_SENTENCE_SHAPE, _SENTENCE_SCALE, count // 3 + 1).astype(np.int64))
    ends = np.cumsum(lengths) - 1
    ends = np.append(ends[ends < count - 1], count - 1)
    starts = np.concatenate(([0], ends[:-1] + 1))
    return starts, ends


def _enclose(rng: np.random.Generator, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    """Wraps a short span inside some sentences in brackets or quotes, in place."""
    u = rng.random((starts.size, 3))
    threshold = 0.0
    for opening, closing, probability in _ENCLOSURES:
        chosen = (u[:, 0] >= threshold) & (u[:, 0] < threshold + probability)
        threshold += probability
        for i in np.flatnonzero(chosen & (ends - starts >= 3)).tolist():
            # The span stays off the sentence's first and last words, which are capitalized
            # and punctuated later.
            inner = int(ends[i] - starts[i]) - 1
            span = 1 + int(u[i, 1] * min(5, inner))
            first = int(starts[i]) + 1 + int(u[i, 2] * (inner - span + 1))
            tokens[first] = opening + tokens[first]
            tokens[first + span - 1] = tokens[first + span - 1] + closing


def _address(rng: np.random.Generator, lexicon: Lexicon) -> str:
    """A URL or e-mail address spelled from a few mid-frequency words."""
    names = []
    for i in rng.integers(150, 5_000, size=3).tolist():
        name = "".join(c for c in lexicon.words[i].lower() if c.isascii() and c.isalnum())
        names.append(name or "site")
    a, b, c = names
    form = rng.random()
    if form < 0.3:
        return f"{a}.{b}@{c}.com"
    if form < 0.6:
        return f"https://www.{a}{b}.com/{c}"
    if form < 0.8:
        return f"http://{a}.org/{b}/{c}.html"
    return f"www.{a}.net"


def _punctuate(rng: np.random.Generator, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    """Adds commas, semicolons, colons and sentence ends, and capitalizes sentences, in place."""
    inner = rng.random(tokens.size) < _MARK_RATE
    inner[ends] = False
    marked = np.flatnonzero(inner)
    tokens[marked] = tokens[marked] + _pick(rng, _INNER_MARK_TABLE, marked.size)
    tokens[ends] = tokens[ends] + _pick(rng, _END_MARK_TABLE, ends.size)
    tokens[starts] = [t[:1].upper() + t[1:] for t in tokens[starts]]


def _layout(rng: np.random.Generator, tokens: list[str], ends: np.ndarray) -> str:
    """Joins tokens with spaces, and sentences into paragraphs separated by blank lines."""
    low, high = _PARAGRAPH_SENTENCES
    sizes = rng.integers(low, high, size=ends.size // low + 1)
    last_sentences = np.cumsum(sizes) - 1
    breaks = ends[last_sentences[last_sentences < ends.size - 1]] + 1
    bounds = [0, *breaks.tolist(), len(tokens)]
    return "\n\n".join(" ".join(tokens[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))


def document(rng: np.random.Generator, lexicon: Lexicon, label: int, classes: int) -> str:
    """Writes one document of class `label`.

    Its first draw is `document_length(rng)`, so the same generator state drawn that way
    gives its number of whitespace-separated words. The rest is deterministic in `rng` too.

    Args:
        rng: The document's own generator.
        lexicon: Where the words come from.
        label: The document's class, 0 <= label < classes; boosts that class's topic words.
        classes: Number of classes in the dataset.
    """
    if not 0 <= label < classes:
        raise ValueError(f"document: label={label} outside 0..{classes - 1}")
    count = document_length(rng)
    tokens = _draw_words(rng, lexicon, label, count)
    _substitute(rng, tokens)
    starts, ends = _sentences(rng, count)
    _enclose(rng, tokens, starts, ends)
    if rng.random() < _ADDRESS_RATE:
        # At a sentence's end, as "see www.example.com." is, so capitals leave it alone.
        sentence = int(rng.integers(ends.size))
        if ends[sentence] > starts[sentence]:
            tokens[ends[sentence]] = _address(rng, lexicon)
    _punctuate(rng, tokens, starts, ends)
    return _layout(rng, tokens.tolist(), ends)
