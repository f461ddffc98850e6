"""The generated data through TensorFlow Datasets, offline."""

import json

import numpy as np
import pytest
from PIL import Image

from feedbench.datasets import tfds_images, tfds_text
from feedbench.pipelines.core.errors import DatasetError


def test_image_folder_loads_through_tfds_with_labels_and_rgb_pixels(image_folder):
    by_path = {f["path"]: f for f in image_folder.files}
    seen = set()
    for example in tfds_images(image_folder.root).as_numpy_iterator():
        relative = example["image/filename"].decode().split("/train/", 1)[1]
        entry = by_path[relative]
        assert example["label"] == entry["label"]
        image = example["image"]
        assert image.dtype == np.uint8 and image.shape == (entry["height"], entry["width"], 3)
        # Same pixels as Pillow's decoding, to JPEG decoder rounding (CMYK and gray included).
        reference = np.asarray(Image.open(image_folder.root / relative).convert("RGB"), dtype=np.int16)
        assert np.abs(image.astype(np.int16) - reference).mean() < 3.0, entry
        seen.add(relative)
    assert seen == set(by_path)


def test_images_without_decoding_are_the_files_bytes(image_folder):
    for example in tfds_images(image_folder.root, decode=False).take(5).as_numpy_iterator():
        relative = example["image/filename"].decode().split("/train/", 1)[1]
        assert example["image"] == (image_folder.root / relative).read_bytes()


def test_text_corpus_loads_through_a_tfds_builder(text_corpus):
    with open(text_corpus.root / "corpus.jsonl", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    examples = list(tfds_text(text_corpus.root).as_numpy_iterator())
    assert [e["text"].decode("utf-8") for e in examples] == [r["text"] for r in records]
    assert [int(e["label"]) for e in examples] == [r["label"] for r in records]
    # Prepared once: a second call reads the cache.
    assert len(list(tfds_text(text_corpus.root / "corpus.jsonl"))) == 300


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(DatasetError, match="no such image folder"):
        tfds_images(tmp_path / "none")
    with pytest.raises(DatasetError, match="no JSONL corpus"):
        tfds_text(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": 0}\n{"text": "no label"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not a"):
        tfds_text(bad)
