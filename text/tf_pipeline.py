"""The text pipeline in tf.data: the "regex" tokenizer as native string ops, the others in Python.

Stages, in the order torch_pipeline.py has them: documents (checked up front, see
:mod:`feedbench.text._records`) -> shuffle (per epoch, seeded) -> tokenize + encode +
truncate (``map`` on `workers` threads) -> batch, by length bucket
(``bucket_by_sequence_length``) or in order (``padded_batch``), padded to the batch's longest
-> prefetch (`prefetch` batches).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import DatasetError
from feedbench.pipelines.core.frameworks import import_tensorflow, private_threads
from feedbench.pipelines.core.seeds import epoch_seed, service_order, stream_seed
from feedbench.pipelines.core.stats import LoaderStats, attach
from feedbench.text import _records, tokenizers
from feedbench.text._common import SAMPLE_STAGES, Prepared, prepare, prepare_source
from feedbench.text._config import TextConfig
from feedbench.text._records import Corpus
from feedbench.text.tokenizers import PUNCT_RANGES, SPACE_RANGES, re2_class
from feedbench.text.vocab import PAD_ID, UNK_ID, Vocab

tf = import_tensorflow()
SHUFFLE_BATCHES = 8  # a service worker's shuffle buffer, in batches (see _documents)

_TFDS_SPLIT = "train"
# The "regex" rule as two rewrites and a split: every space character (in Python's sense)
# that tf.strings.split does not split on becomes " ", every punctuation character gets a
# space on either side; splitting on ASCII whitespace then gives the tokens. (One rewrite
# with a capture group does both but takes RE2 twice as long: captures need its slower engines.)
_SPLIT_SPACES = " \t\n\v\f\r"  # absl::ascii_isspace, what tf.strings.split(sep=None) splits on
_OTHER_SPACES = tuple(
    (c, c) for lo, hi in SPACE_RANGES for c in range(lo, hi + 1) if chr(c) not in _SPLIT_SPACES
)
_SPACED = ((f"[{re2_class(_OTHER_SPACES)}]", " "), (f"[{re2_class(PUNCT_RANGES)}]", r" \0 "))
_COMBINING_ABOVE = "\u0300"  # Lithuanian lowercasing of I, J and I-ogonek depends on a following accent


@functools.lru_cache(maxsize=1)
def _lowered_otherwise() -> tuple[str, ...]:
    """The characters that ``tf.strings.lower`` lowercases otherwise than ``str.lower`` here.

    TensorFlow lowercases with its own ICU: older Unicode data than Python's (letters new in
    Unicode 14 stay upper), the process's default locale (from LC_ALL, LC_MESSAGES or LANG:
    under tr, az or lt, I and İ, and for lt also J, Į, Ì, Í, Ĩ, lowercase otherwise), and it
    ends a document at its first NUL (it reads a C string). Probed once per process, on every
    character that Python lowercases, alone and before a combining accent.
    """
    changed = [c for c in map(chr, range(0x21, 0x110000)) if c.lower() != c]
    pieces = changed + [c + _COMBINING_ABOVE for c in changed]
    probe = " ".join(pieces)
    with tf.init_scope():  # eagerly, also when first called while a map function is traced
        native = tf.strings.lower(probe, encoding="utf-8").numpy().decode("utf-8").split(" ")
    mine = probe.lower().split(" ")
    differ = {piece[0] for piece, a, b in zip(pieces, mine, native, strict=True) if a != b}
    return ("\x00", *sorted(differ))


@functools.lru_cache(maxsize=1)
def _lowers_natively() -> str:
    """An RE2 pattern that a document fully matches when ICU lowercases it as Python does."""
    return f"[^{re2_class(tuple((ord(c), ord(c)) for c in _lowered_otherwise()))}]*"


def _lower_in_python(texts: np.ndarray | bytes) -> np.ndarray:
    array = np.asarray(texts, dtype=object)
    lowered = [text.decode("utf-8").lower().encode("utf-8") for text in array.ravel()]
    return np.array(lowered, dtype=object).reshape(array.shape)


def _lower(texts: tf.Tensor) -> tf.Tensor:
    """``str.lower()`` of UTF-8 strings: ICU's where it agrees, Python's for the rare rest."""
    native = tf.reduce_all(tf.strings.regex_full_match(texts, _lowers_natively()))

    def python() -> tf.Tensor:
        lowered = tf.numpy_function(_lower_in_python, [texts], tf.string, stateful=False)
        return tf.ensure_shape(lowered, texts.shape)

    return tf.cond(native, lambda: tf.strings.lower(texts, encoding="utf-8"), python)


def native_regex_tokens(texts: tf.Tensor | str | list[str], lowercase: bool) -> tf.Tensor | tf.RaggedTensor:
    """The "regex" tokenizer as TensorFlow string ops: the tokens of
    ``tokenizers.tokenize(text, "regex", lowercase=lowercase)`` as UTF-8 bytes.

    Lowercasing is ICU's (``tf.strings.lower``) except for documents holding a character
    that ICU lowercases otherwise than Python in this process (see :func:`_lowered_otherwise`):
    those are lowercased by Python through ``tf.numpy_function``.

    Args:
        texts: A string scalar or tensor (UTF-8).
        lowercase: Lowercase each document first.

    Returns:
        For a scalar, a 1-D string tensor; for a tensor of rank N, a RaggedTensor of rank N+1.
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    if lowercase:
        texts = _lower(texts)
    for pattern, rewrite in _SPACED:
        texts = tf.strings.regex_replace(texts, pattern, rewrite)
    return tf.strings.split(texts)


def _lookup_table(vocab: Vocab) -> tf.lookup.StaticHashTable:
    keys = tf.constant(list(vocab.tokens), tf.string)
    ids = tf.range(len(vocab), dtype=tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), default_value=UNK_ID)


_Encoder = Callable[[tf.Tensor], tf.Tensor]


def _native_encoder(vocab: Vocab, cfg: TextConfig, through: str | None) -> _Encoder:
    """text -> the first max_len ids, all in TensorFlow ops (no Python, no GIL); with `through`
    "tokenize", [the number of tokens]."""
    table = _lookup_table(vocab)
    _lowers_natively()  # probes ICU now, not in the first map call

    def encode(text: tf.Tensor) -> tf.Tensor:
        tokens = native_regex_tokens(text, cfg.lowercase)
        if through == "tokenize":
            return tf.size(tokens, out_type=tf.int64)[None]
        return table.lookup(tokens[: cfg.max_len])

    return encode


def _python_encoder(vocab: Vocab, cfg: TextConfig, through: str | None) -> _Encoder:
    """text -> the first max_len ids, through the Python tokenizer in ``tf.numpy_function``;
    with `through` "tokenize", [the number of tokens]."""
    split = tokenizers.tokenizer(cfg.tokenizer, lowercase=cfg.lowercase)
    split("")  # loads the tokenizer now (spaCy's takes ~0.3 s), not in the first map call

    def ids(text: bytes | np.ndarray) -> np.ndarray:
        raw = text.item() if isinstance(text, np.ndarray) else text
        tokens = split(raw.decode("utf-8"))
        if through == "tokenize":
            return np.asarray([len(tokens)], dtype=np.int64)
        return np.asarray(vocab.encode(tokens[: cfg.max_len]), dtype=np.int64)

    def encode(text: tf.Tensor) -> tf.Tensor:
        return tf.ensure_shape(tf.numpy_function(ids, [text], tf.int64, stateful=False), [None])

    return encode


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (a record check wants int labels)."""
    return value.item() if isinstance(value, np.generic) else value


def _tfds_corpus(source: Any, on_error: str) -> Corpus:
    """The checked documents of a TFDS builder ("train" split) or dataset of dicts, read once."""
    if isinstance(source, tf.data.Dataset):
        examples, origin = source, "TFDS dataset"
    else:
        examples = source.as_dataset(split=_TFDS_SPLIT, shuffle_files=False)
        origin = f"TFDS dataset {source.name}"
    spec = examples.element_spec
    missing = {"text", "label"} - (set(spec) if isinstance(spec, dict) else set())
    if missing:
        names = ", ".join(sorted(missing))
        raise DatasetError(f"{origin}: no feature(s) {names} (a text source has text and label)")
    pairs = examples.map(lambda example: (example["text"], example["label"]))
    records: Iterator[tuple[str, Any, Any]] = (
        (f"TFDS example {n}", _plain(text), _plain(label))
        for n, (text, label) in enumerate(pairs.as_numpy_iterator())
    )
    return _records.from_records(records, origin, on_error)


def _prepare(source: Any, cfg: TextConfig) -> Prepared:
    if isinstance(source, tf.data.Dataset) or hasattr(source, "as_dataset"):
        return prepare(_tfds_corpus(source, cfg.on_error), cfg)
    return prepare_source(source, cfg)


def _documents(prepared: Prepared, cfg: TextConfig, *, remote: bool = False) -> tf.data.Dataset:
    """(text, label) elements of the shard in source order, reshuffled every epoch with
    `shuffle`. The shard was taken from the checked documents (_common.prepare): the
    elements ``Dataset.shard`` of the source's records would give, without holding the
    other shards' strings in this process. `remote` (service workers) with `shuffle`: the
    documents permuted here, then shuffled through a buffer of SHUFFLE_BATCHES batches (a
    whole-corpus buffer on a worker is filled a document at a time from the dispatcher before
    its first batch of every epoch)."""
    texts, labels = list(prepared.corpus.texts), list(prepared.corpus.labels)
    if remote and cfg.shuffle:
        order = service_order(cfg.seed, len(texts))
        texts, labels = [texts[i] for i in order], [labels[i] for i in order]
    documents = tf.data.Dataset.from_tensor_slices((tf.constant(texts, tf.string), tf.constant(labels, tf.int64)))
    if not cfg.shuffle:
        return documents
    # The whole corpus as the buffer (the strings only, before tokenizing): a uniform
    # permutation every epoch, as torch's sampler draws one.
    seed = stream_seed(cfg.seed, "shuffle")
    return documents.shuffle(SHUFFLE_BATCHES * cfg.batch_size if remote else len(texts), seed=seed,
                             reshuffle_each_iteration=True)


def _encoded(documents: tf.data.Dataset, encoder: _Encoder, cfg: TextConfig, through: str | None = None,
             ) -> tf.data.Dataset:
    """The map stage: (ids int64 [n], n, label), n <= max_len, on `workers` threads. With
    `through` (a stage of _common.SAMPLE_STAGES): ([one number], its bucket length, label)."""

    @tf.autograph.experimental.do_not_convert
    def encode(text: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        if through == "read":
            return tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.int64)[None], tf.constant(0, tf.int64), label
        ids = encoder(text)
        if through:  # the count of tokens or ids, bucketed by the ids it keeps
            kept = tf.minimum(ids[0], cfg.max_len) if through == "tokenize" else tf.size(ids, out_type=tf.int64)
            return (ids if through == "tokenize" else kept[None]), kept, label
        return ids, tf.size(ids, out_type=tf.int64), label

    if cfg.workers == 0:
        return documents.map(encode)  # sequential, in this pipeline's own thread
    # deterministic: the order in is the order out, so that a seed repeats its batches
    # with any number of threads.
    parallel = tf.data.AUTOTUNE if cfg.workers == AUTOTUNE else cfg.workers
    return documents.map(encode, num_parallel_calls=parallel, deterministic=True)


def _batched(encoded: tf.data.Dataset, prepared: Prepared, cfg: TextConfig) -> tf.data.Dataset:
    """(token_ids [B, T] padded with PAD_ID, lengths [B], labels [B]), by bucket or in order."""
    padding = (tf.constant(PAD_ID, tf.int64), tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    if not cfg.bucket:
        return encoded.padded_batch(cfg.batch_size, padding_values=padding, drop_remainder=cfg.drop_last)
    return encoded.bucket_by_sequence_length(
        element_length_func=lambda ids, n, label: tf.cast(n, tf.int32),
        bucket_boundaries=list(prepared.boundaries),
        bucket_batch_sizes=[cfg.batch_size] * (len(prepared.boundaries) + 1),
        padding_values=padding,
        drop_remainder=cfg.drop_last,
    )


def build_tf_dataset(source: str | os.PathLike[str] | Any, cfg: TextConfig) -> tf.data.Dataset:
    """The tf.data pipeline for `source` under `cfg` (see :func:`tf_dataset`)."""
    return _pipeline(source, cfg, None)


def build_tf_prefix(source: str | os.PathLike[str] | Any, cfg: TextConfig, through: str) -> tf.data.Dataset:
    """The pipeline of :func:`build_tf_dataset` stopped after the document stage `through`
    ("read", "tokenize" or "encode": _common.SAMPLE_STAGES): each document becomes one number
    (its characters, tokens or ids), batched as the pipeline batches, so that ``feedbench
    explain`` can cost a stage as the difference between two prefixes."""
    checks.choice("through", through, SAMPLE_STAGES)
    return _pipeline(source, cfg, through)


def _pipeline(source: str | os.PathLike[str] | Any, cfg: TextConfig, through: str | None) -> tf.data.Dataset:
    made, stats = batches(source, cfg, through)
    if cfg.prefetch != 0:
        made = made.prefetch(tf.data.AUTOTUNE if cfg.prefetch == AUTOTUNE else cfg.prefetch)
    made, threads = private_threads(made, cfg.workers, cfg.prefetch)
    with_threads = dataclasses.replace(stats(), threads=threads)
    return attach(made, lambda: with_threads)


def batches(source: str | os.PathLike[str] | Any, cfg: TextConfig,
            through: str | None) -> tuple[tf.data.Dataset, Callable[[], LoaderStats]]:
    """The pipeline's batches before its prefetch, and its stats."""
    prepared = _prepare(source, cfg)
    encoder = (_native_encoder if cfg.tokenizer == "regex" else _python_encoder)(prepared.vocab, cfg, through)
    made = _batched(_encoded(_documents(prepared, cfg), encoder, cfg, through), prepared, cfg)
    stats = prepared.stats(cfg)
    return made, lambda: stats


def remote_batches(source: str | os.PathLike[str] | Any, cfg: TextConfig,
                   through: str | None) -> tuple[Callable[[int], tf.data.Dataset], Callable[[], LoaderStats]]:
    """The batches of :func:`batches` as tf.data service workers make them: (a function of the
    epoch, 0 first, giving that epoch's graph; the stats). The corpus is read, checked and its
    vocabulary made here, once. The workers are other processes that cannot call this one's
    Python (the config holds the native "regex" tokenizer: ServiceTextConfig); each encodes
    its documents in turn (a worker is one sequential map, as a DataLoader worker is one
    process). A job restarts the graph's seeded streams: each epoch's graph is seeded by
    ``epoch_seed(cfg.seed, epoch)``, so that epochs differ as tf.data's do."""
    prepared = _prepare(source, cfg)
    encoder = _native_encoder(prepared.vocab, cfg, through)

    def epoch_batches(epoch: int) -> tf.data.Dataset:
        epoch_cfg = dataclasses.replace(cfg, seed=epoch_seed(cfg.seed, epoch))
        documents = _documents(prepared, epoch_cfg, remote=True)
        return _batched(_encoded(documents, encoder, dataclasses.replace(epoch_cfg, workers=0), through), prepared,
                        epoch_cfg)

    stats = prepared.stats(cfg)
    return epoch_batches, lambda: stats


def tf_dataset(
    source: str | os.PathLike[str] | Any,
    *,
    tokenizer: str = "spacy",
    vocab: Vocab | str | os.PathLike[str] | None = None,
    max_len: int = 512,
    lowercase: bool = True,
    batch_size: int = 64,
    workers: int | str | None = None,
    shuffle: bool = True,
    bucket: bool = True,
    seed: int = 0,
    prefetch: int | str = 2,
    drop_last: bool = False,
    on_error: str = "raise",
    min_freq: int = 1,
    max_size: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
) -> tf.data.Dataset:
    """A text classification tf.data.Dataset: the TensorFlow half of a mirrored pair.

    Each document is tokenized, encoded with the vocabulary (unknown tokens become
    ``UNK_ID`` = 1) and truncated to `max_len` tokens; batches are ``(token_ids int64
    [B, T] padded with 0, lengths int64 [B], labels int64 [B])``, T being the longest
    document of the batch. With `bucket`, ``bucket_by_sequence_length`` batches documents of
    one length bucket (boundaries 16, 32, 64, ... below `max_len`: n tokens go to bucket
    ``bisect_right(boundaries, n)``); a bucket's batch leaves when it is full, the partial
    ones at the epoch's end, in bucket order. Every record is read and checked when the
    dataset is built; so is the vocabulary, built from `source` when none is given (the
    same one :func:`feedbench.text.torch_loader` builds).

    ``feedbench.pipelines.stats_of(dataset)`` says what the consumer loop records: the records
    dropped by ``on_error="skip"`` (``skipped``), the documents longer than `max_len`, each
    counted once (``truncated``), the vocabulary's size and the number of classes (the
    largest label plus one; the textcls workload sizes itself by them); it works for a
    dataset derived from this one too (``.take()``, ``.map()``, ...).

    The keywords mean what they mean for :func:`feedbench.text.torch_loader`. Differences
    that cannot be avoided:

    - `workers` is ``num_parallel_calls``: threads in this process, not worker processes
      ("autotune": tf.data's AUTOTUNE; 0: the map runs sequentially).
    - "spacy" and "nltk" run in Python through ``tf.numpy_function``, which holds the GIL:
      parallel calls take turns rather than tokenizing at once, so more workers help little
      (torch's worker processes do scale). "regex" runs as native ops (RE2, ICU, a
      ``StaticHashTable``) without Python and scales with threads; its tokens are those of
      the Python rule. A document holding a character that TensorFlow's ICU lowercases
      otherwise than ``str.lower`` (NUL, letters newer than its Unicode data, I and İ under
      a Turkish, Azeri or Lithuanian locale) is lowercased by Python instead (the GIL again).
    - With "spacy" or "nltk", an iterator left part-read when Python exits can hang the exit
      (TensorFlow's threads wait for the GIL of the exiting interpreter): read it to the end
      or drop it (``del``) first; ``feedbench.pipelines.measure`` drops its own.
    - `prefetch` counts batches for the whole pipeline ("autotune" allowed), not per worker.
    - The shuffle is tf.data's (the whole corpus as its buffer), seeded from `seed`: the same
      seed repeats here with any number of threads (a global ``tf.random.set_seed`` changes
      it too), but the order differs from torch's, so batches hold other documents, though
      each epoch holds every document once on both.
    - The corpus is held as one string tensor in this process (torch gives each worker a
      copy of the Python strings).

    Args:
        source: A corpus folder (``corpus.jsonl``), a ``.jsonl`` file of ``{"text", "label"}``
            records, a ``.parquet`` file or a folder of them (columns text and label), a TFDS
            ``DatasetBuilder`` with "text" and "label" features (its "train" split), or a
            ``tf.data.Dataset`` of such dicts (e.g. :func:`feedbench.datasets.tfds_text`);
            TFDS examples are read once, named "TFDS example N" in messages.
        tokenizer: "spacy", "nltk" or "regex" (see :mod:`feedbench.text.tokenizers`).
        vocab: A Vocab, the path of one saved with ``Vocab.save``, or None to build one
            from `source`.
        max_len: Most tokens kept per document; longer ones are truncated and counted.
        lowercase: Lowercase each document before tokenizing.
        batch_size: Documents per batch.
        workers: ``num_parallel_calls`` of the tokenizing map; None: one per core less one;
            0: the map runs sequentially, though the ``prefetch`` stage still makes batches
            ahead on a background thread (unless ``prefetch=0``), unlike torch's 0, which
            tokenizes in the main process between steps.
        shuffle: Reshuffle every epoch (seeded).
        bucket: Batch documents of similar length together (less padding).
        seed: Seed of the shuffle: the same seed gives the same batches.
        prefetch: Batches made ahead; 0: none (torch takes 0 as 1 per worker).
        drop_last: Drop a last short batch (of each bucket, when bucketing).
        on_error: "raise" or "skip" (dropped and counted) for bad records.
        min_freq: When building the vocabulary: fewest occurrences a token needs.
        max_size: When building the vocabulary: most ids, the two special ones included.
        num_shards: Shards the source's records are dealt into; 1: the whole source.
        shard_index: The shard read, 0 to num_shards - 1: the records i of the source's
            listing order (JSONL records, Parquet rows in file and row order, TFDS
            examples in TFDS's order) with ``i % num_shards == shard_index``, the same
            every epoch; the shuffle (and the bucketing) works within the shard, and an
            epoch is one pass over it. ``tf.data.Dataset.shard`` semantics (before the
            shuffle) on both sides, so that :func:`feedbench.text.torch_loader`'s shard k
            holds the same documents: the shard is taken from the checked documents before
            the dataset is made, the elements ``Dataset.shard`` would give (torch takes the
            subset of indices, not a ``DistributedSampler``, which re-deals every epoch and
            pads). The vocabulary and the number of classes are the whole source's, the
            same in every shard; every record is still checked ("raise" fails every shard
            on a bad record; "skip" counts each shard's own).

    Returns:
        A re-iterable tf.data.Dataset; each iteration is the next epoch.

    Raises:
        ConfigError: A keyword out of range, a vocabulary built with another tokenizer
            or lowercasing, or more shards than records.
        DatasetError: The source is missing or holds no usable document; a bad record
            ("raise", naming its file and line, row or TFDS example); an unreadable
            vocabulary file; a TFDS source without text and label.
        MissingDependencyError: TensorFlow, or the tokenizer's package (spaCy, NLTK), is not
            installed.
    """
    cfg = TextConfig(
        tokenizer=tokenizer, vocab=vocab, max_len=max_len, lowercase=lowercase, batch_size=batch_size,
        workers=workers, shuffle=shuffle, bucket=bucket, seed=seed, prefetch=prefetch, drop_last=drop_last,
        on_error=on_error, min_freq=min_freq, max_size=max_size, num_shards=num_shards, shard_index=shard_index,
    )
    return build_tf_dataset(source, cfg)
