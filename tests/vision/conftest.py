"""Damaged image folders and a Pillow reference for the pipeline tests."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD


def _pil_eval(path, size):
    """The eval transform done with Pillow, HWC float32: the reference both pipelines are held to."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    short = int(size * 256 / 224)
    new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize(new, Image.BILINEAR)
    left, top = int(round((new[0] - size) / 2)), int(round((new[1] - size) / 2))
    array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
    return ((array - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


@pytest.fixture(scope="session")
def pil_eval():
    """The Pillow reference of the eval transform: pil_eval(path, size) -> HWC array."""
    return _pil_eval


@pytest.fixture()
def broken_folder(small_folder, tmp_path):
    """A copy of the small folder with one image of each kind of damage a real folder has."""
    root = tmp_path / "broken"
    shutil.copytree(small_folder.root, root)
    (root / "manifest.json").unlink()
    good = sorted((root / "class_000").glob("*.jpg"))[0].read_bytes()
    (root / "class_000" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "class_001" / "empty.jpg").write_bytes(b"")
    (root / "class_001" / "notes.jpg").write_text("this is text, not an image\n")
    os.symlink(root / "does-not-exist.jpg", root / "class_002" / "dangling.jpg")
    return root, {"truncated.jpg", "empty.jpg", "notes.jpg", "dangling.jpg"}
