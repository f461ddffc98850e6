"""The vocabulary: tokens to ids, built once from a training corpus, shared by both frameworks.

Ids: ``<pad>`` = 0, ``<unk>`` = 1, then tokens by falling count, ties broken by the token's
code points (so the same corpus always gives the same ids). A vocabulary remembers the
tokenizer and lowercasing it was built with; using it with another is an error.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.batch_format import PAD_ID
from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.core.files import write_text_atomically
from feedbench.text.tokenizers import check_name, tokenizer

PAD, UNK = "<pad>", "<unk>"
UNK_ID = 1  # the id of <unk>; PAD_ID (0, <pad>) is the batch format's (core.batch_format)
FORMAT = "feedbench-vocab/1"


@dataclass(frozen=True)
class Vocab:
    """An immutable token <-> id mapping.

    Attributes:
        tokens: The token of each id; ``tokens[0]`` is ``<pad>``, ``tokens[1]`` ``<unk>``.
        tokenizer: The tokenizer's name the vocabulary was built with.
        lowercase: Whether the documents were lowercased first.
        min_freq: Fewest occurrences a token needed to get an id.
        max_size: Most ids, the two special ones included (None: no limit).
    """

    tokens: tuple[str, ...]
    tokenizer: str
    lowercase: bool
    min_freq: int = 1
    max_size: int | None = None
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_name(self.tokenizer)
        if tuple(self.tokens[:2]) != (PAD, UNK):
            raise ConfigError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(self.tokens[:2])}")
        ids = {token: i for i, token in enumerate(self.tokens)}
        if len(ids) != len(self.tokens):
            raise ConfigError("a vocabulary lists each token once; this one repeats some")
        object.__setattr__(self, "_ids", ids)

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self._ids.get(token, UNK_ID)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        ids = self._ids
        return [ids.get(token, UNK_ID) for token in tokens]

    def check(self, tokenizer_name: str, lowercase: bool) -> None:
        """Raises ConfigError when this vocabulary was built with another tokenizer or case."""
        if (self.tokenizer, self.lowercase) != (tokenizer_name, lowercase):
            raise ConfigError(
                f"the vocabulary was built with tokenizer {self.tokenizer!r} (lowercase={self.lowercase}); "
                f"it cannot encode tokenizer {tokenizer_name!r} (lowercase={lowercase}): build one for it"
            )

    @classmethod
    def build(cls, texts: Iterable[str], *, tokenizer_name: str, lowercase: bool, min_freq: int = 1,
              max_size: int | None = None) -> Vocab:
        """Counts the tokens of `texts` and keeps those seen at least `min_freq` times."""
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ConfigError(f"min_freq must be an integer >= 1, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2):
            raise ConfigError(f"max_size must be an integer >= 2 (the two special tokens) or None, got {max_size!r}")
        split = tokenizer(tokenizer_name, lowercase=lowercase)
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split(text))
        return cls.from_counts(counts, tokenizer_name=tokenizer_name, lowercase=lowercase, min_freq=min_freq,
                               max_size=max_size)

    @classmethod
    def from_counts(cls, counts: Counter[str], *, tokenizer_name: str, lowercase: bool, min_freq: int = 1,
                    max_size: int | None = None) -> Vocab:
        """The vocabulary of token counts: by falling count, ties in code point order."""
        kept = sorted((t for t, n in counts.items() if n >= min_freq and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls((PAD, UNK, *kept), tokenizer_name, lowercase, min_freq, max_size)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "tokenizer": self.tokenizer, "lowercase": self.lowercase,
                "min_freq": self.min_freq, "max_size": self.max_size, "tokens": list(self.tokens)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the vocabulary as JSON, whole or not at all (written aside, then renamed)."""
        path = Path(path)
        try:
            write_text_atomically(path, json.dumps(self.to_dict(), ensure_ascii=False))
        except OSError as exc:
            raise DatasetError(f"{path}: cannot write the vocabulary ({exc.strerror})") from exc
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        """Reads a vocabulary written by :meth:`save`; DatasetError names the file otherwise."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DatasetError(f"{path}: no such vocabulary file") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path}: not a feedbench vocabulary ({type(exc).__name__})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a feedbench vocabulary (no {FORMAT!r} format field)")
        try:
            return cls(tuple(data["tokens"]), data["tokenizer"], bool(data["lowercase"]), data["min_freq"],
                       data["max_size"])
        except (KeyError, TypeError, ConfigError) as exc:
            raise DatasetError(f"{path}: a damaged vocabulary ({type(exc).__name__}: {exc})") from exc


def resolve_vocab(vocab: Vocab | str | os.PathLike[str], tokenizer_name: str, lowercase: bool) -> Vocab:
    """A Vocab from an object or a file, checked against the tokenizer it will serve."""
    loaded = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab)
    loaded.check(tokenizer_name, lowercase)
    return loaded


def pad(sequences: Sequence[Sequence[int]], length: int) -> list[list[int]]:
    """Each sequence right-padded with PAD_ID to `length` (used by tests and the torch collate)."""
    return [list(s) + [PAD_ID] * (length - len(s)) for s in sequences]
