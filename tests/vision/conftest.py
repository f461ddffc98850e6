"""Small image datasets for the pipeline tests, made once per session."""

import os
import shutil

import pytest

from feedbench.datasets import make_image_folder, make_image_shards


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory):
    """24 images of about 96x72 in 3 classes, with grayscale, CMYK and PNG files among them."""
    root = tmp_path_factory.mktemp("vision") / "folder"
    return make_image_folder(root, 24, classes=3, seed=11, size=(96, 72), gray_fraction=0.15, png_fraction=0.15,
                             cmyk_fraction=0.15, workers=1)


@pytest.fixture(scope="session")
def small_shards(small_folder, tmp_path_factory):
    return make_image_shards(small_folder.root, tmp_path_factory.mktemp("vision") / "shards", rows_per_group=8)


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
