"""Plain helpers shared by the torch and the tf.data text pipeline tests (imported
relatively: ``from ._helpers import ...``, which pytest's importlib import mode allows)."""

import json

from feedbench.text import tokenize
from feedbench.text._common import bucket_of


def read_documents(corpus_root):
    """(texts, labels) of a corpus folder's ``corpus.jsonl``, in source order."""
    lines = (corpus_root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    return [r["text"] for r in records], [r["label"] for r in records]


def reference(texts, vocab, max_len, tokenizer="regex"):
    """The Python reference of each document's ids: tokenize, encode, truncate."""
    return [vocab.encode(tokenize(text, tokenizer, lowercase=True))[:max_len] for text in texts]


def rows(batches):
    """Each document of the batches as (ids, label), in batch order."""
    out = []
    for ids, lengths, labels in batches:
        out += [(ids[i, : lengths[i]].tolist(), int(labels[i])) for i in range(len(labels))]
    return out


def bucket_batches(lengths, batch_size, drop_last, boundaries):
    """tf.data's bucket_by_sequence_length over documents 0..n-1 in order: the batches' indices."""
    out, open_ = [], {}
    for index, n in enumerate(lengths):
        batch = open_.setdefault(bucket_of(n, boundaries), [])
        batch.append(index)
        if len(batch) == batch_size:
            out.append(batch)
            open_[bucket_of(n, boundaries)] = []
    return out + ([] if drop_last else [open_[b] for b in sorted(open_) if open_[b]])


def write_jsonl(path, records):
    """`records` (JSON lines, as text) written to `path`, one a line."""
    path.write_text("".join(line + "\n" for line in records), encoding="utf-8")
    return path


def write_documents(path, texts, labels):
    """A JSONL corpus of ``{"text", "label"}`` records at `path`."""
    return write_jsonl(path, [json.dumps({"text": t, "label": y}) for t, y in zip(texts, labels)])
