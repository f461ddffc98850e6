"""Fault cases: text records, Parquet shards and dataset folders as users meet them, through
both pipelines. A bad record or file is named in one line ("raise") or dropped and counted
("skip"); a folder that cannot be used is one line naming it; nothing hangs; nothing of the
user's changes."""

import io
import json
import os
import socket

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from feedbench.pipelines import stats_of
from feedbench.pipelines.core.errors import described
from feedbench.text import tf_dataset as text_tf
from feedbench.text import torch_loader as text_torch
from feedbench.vision import tf_dataset, torch_loader

TEXT = {"torch": text_torch, "tf": text_tf}
IMAGES = {"torch": torch_loader, "tf": tf_dataset}
FRAMEWORKS = pytest.mark.parametrize("framework", ["torch", "tf"])
TEXT_OPTIONS = {"tokenizer": "regex", "batch_size": 4, "workers": 0, "shuffle": False}
IMAGE_OPTIONS = {"train": False, "shuffle": False, "batch_size": 2, "workers": 0, "image_size": 16, "drop_last": False}
GOOD = [{"text": f"document number {k} says hello", "label": k % 2} for k in range(6)]

# A record line -> what the one-line error says about it.
BAD_RECORDS = {
    b"{not json": "not JSON",
    b'{"text": "caf\xe9", "label": 0}': "not UTF-8",
    b'["a", 1]': "a record is an object",
    b'{"label": 1}': 'no "text"',
    b'{"text": "no label here"}': 'no "label"',
    b'{"text": 12, "label": 0}': '"text" must be a string',
    b'{"text": "negative", "label": -1}': '"label" must be >= 0',
    b'{"text": "boolean", "label": true}': '"label" must be an integer',
    b'{"text": "float", "label": 1.5}': '"label" must be an integer',
    b'{"text": "\\ud800 lone", "label": 0}': "lone surrogate",
    b'{"text": "", "label": 0}': "empty document",
    b'{"text": " \\t\\n ", "label": 0}': "whitespace-only",
    b'{"text": "huge", "label": 9223372036854775808}': "an int64",
}


def _epoch_size(loader) -> int:
    return sum(len(batch[-1]) for batch in loader)


def _skipped(framework, loader) -> int:
    return loader.skipped if framework == "torch" else stats_of(loader).skipped


@pytest.mark.parametrize("record", sorted(BAD_RECORDS), ids=lambda r: BAD_RECORDS[r])
def test_a_bad_text_record_is_named_or_counted_by_both(fault, tmp_path, record):
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps(r).encode() for r in GOOD]
    lines.insert(3, record)
    path.write_bytes(b"\n".join(lines) + b"\n")
    before = fault.digest(path)
    with fault.within(60):
        for framework in ("torch", "tf"):
            line = fault.refused(lambda f=framework: _epoch_size(TEXT[f](path, **TEXT_OPTIONS)), f"{path} line 4",
                                 what=f"{framework}: the bad record")
            assert BAD_RECORDS[record] in line
            loader = TEXT[framework](path, on_error="skip", **TEXT_OPTIONS)
            fault.all_there(_epoch_size(loader), len(GOOD))
            fault.counted(_skipped(framework, loader), 1)
    fault.unchanged(before, fault.digest(path), "the corpus")


def _shards(folder, table):
    folder.mkdir()
    pq.write_table(table, folder / "part-0.parquet")
    return folder


BAD_SHARDS = {
    "not parquet": (lambda f: (f.mkdir(), (f / "part-0.parquet").write_text("text,label\nhi,1\n")) and f,
                    "not a Parquet file"),
    "truncated": (lambda f: (_shards(f, pa.table({"text": ["a b"] * 50, "label": [1] * 50})),
                             (f / "part-0.parquet").write_bytes((f / "part-0.parquet").read_bytes()[:200])) and f,
                  "not a Parquet file"),
    "no label column": (lambda f: _shards(f, pa.table({"text": ["a b"]})), "no column label"),
    "labels as strings": (lambda f: _shards(f, pa.table({"text": ["a b"], "label": ["one"]})),
                          "column label must hold integers"),
    "texts as numbers": (lambda f: _shards(f, pa.table({"text": [1.5], "label": [1]})),
                         "column text must hold strings"),
    "no rows": (lambda f: _shards(f, pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())})),
                "no usable document"),
    "a null label": (lambda f: _shards(f, pa.table({"text": ["a b", "c d"], "label": pa.array([1, None])})),
                     'row 1: no "label"'),
}


@pytest.mark.parametrize("case", sorted(BAD_SHARDS))
def test_a_bad_text_shard_is_one_line_naming_it(fault, tmp_path, case):
    make, words = BAD_SHARDS[case]
    folder = make(tmp_path / "shards")
    before = fault.digest(folder)
    with fault.within(60):
        for framework in ("torch", "tf"):
            line = fault.refused(lambda f=framework: _epoch_size(TEXT[f](folder, **TEXT_OPTIONS)), folder,
                                 what=f"{framework}: {case}")
            assert words in line
    fault.unchanged(before, fault.digest(folder), "the shards")


def _jpeg(seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for k in range(2):
            (root / cls / f"{k}.jpg").write_bytes(_jpeg(k))
    return root


@FRAMEWORKS
def test_a_fifo_named_like_an_image_is_not_read(fault, folder, framework):
    os.mkfifo(folder / "a" / "pipe.jpg")  # opening it would wait for a writer for ever
    with fault.within(60):
        fault.all_there(_epoch_size(IMAGES[framework](folder, **IMAGE_OPTIONS)), 4)


@FRAMEWORKS
def test_a_socket_and_a_folder_named_like_images_are_not_read(fault, folder, framework):
    (folder / "a" / "folder.jpg").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "b" / "socket.jpg"))
    try:
        with fault.within(60):
            fault.all_there(_epoch_size(IMAGES[framework](folder, **IMAGE_OPTIONS)), 4)
    finally:
        server.close()


@FRAMEWORKS
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_file_that_vanishes_after_the_scan_is_named_or_counted(fault, folder, framework, on_error):
    loader = IMAGES[framework](folder, on_error=on_error, **IMAGE_OPTIONS)
    gone = folder / "b" / "1.jpg"
    gone.unlink()
    with fault.within(60):
        try:
            size = _epoch_size(loader)
        except Exception as exc:  # noqa: BLE001
            assert on_error == "raise"
            assert "unreadable (No such file or directory)" in fault.one_line(described(exc), gone)
        else:
            if on_error == "raise":
                fault.broke("silent drops", "the vanished file was not named")
            fault.all_there(size, 3)
            fault.counted(_skipped(framework, loader), 1)


@FRAMEWORKS
@pytest.mark.parametrize(
    ("layout", "words"),
    [("empty", "no class folders"), ("file", "no such image folder"), ("only-text", "class folder with no image"),
     ("missing", "no such image folder")],
)
def test_a_folder_that_holds_no_dataset_is_one_line(fault, tmp_path, framework, layout, words):
    root = tmp_path / "data"
    if layout == "empty":
        root.mkdir()
    elif layout == "file":
        root.write_bytes(_jpeg())
    elif layout == "only-text":
        (root / "a").mkdir(parents=True)
        (root / "a" / "notes.txt").write_text("no images here")
    with fault.within(60):
        try:
            IMAGES[framework](root, **IMAGE_OPTIONS)
        except Exception as exc:  # noqa: BLE001
            assert words in fault.one_line(described(exc), root)
        else:
            fault.broke("silent drops", f"a {layout} folder was taken as a dataset")
