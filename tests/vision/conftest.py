"""Damaged image folders for the pipeline tests."""

import os
import shutil

import pytest


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
