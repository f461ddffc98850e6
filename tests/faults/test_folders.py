"""Dataset folders a file system can hand a user: links that lead nowhere, folders that cannot
be listed. Each is a one-line error naming the path, or a counted skip, never a traceback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedbench.datasets.folders import scan_image_folder
from feedbench.pipelines import DatasetError
from feedbench.vision import tf_dataset, torch_loader

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))
FACTORIES = {"torch": torch_loader, "tf": tf_dataset}
FRAMEWORKS = pytest.mark.parametrize("framework", sorted(FACTORIES))
AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its permissions")


@pytest.fixture()
def linked_folder(small_folder, tmp_path):
    """The small folder with a class-folder link that loops, one to nowhere, and a file link that loops."""
    root = tmp_path / "linked"
    shutil.copytree(small_folder.root, root)
    (root / "manifest.json").unlink()
    os.symlink("loop", root / "loop")
    os.symlink(tmp_path / "nowhere", root / "gone")
    os.symlink("self.jpg", root / "class_001" / "self.jpg")
    return root


def test_a_class_link_that_leads_nowhere_is_no_class_and_a_file_link_is_listed(fault, linked_folder):
    classes, samples = scan_image_folder(linked_folder)
    assert classes == ["class_000", "class_001", "class_002"]
    assert linked_folder / "class_001" / "self.jpg" in [path for path, _ in samples]


@FRAMEWORKS
def test_a_file_link_loop_is_named_or_skipped_and_counted(fault, linked_folder, framework):
    options = {"train": False, "shuffle": False, "batch_size": 5, "workers": 2, "image_size": 16}
    with pytest.raises(DatasetError, match=r"self\.jpg: unreadable \(Too many levels of symbolic links\)"):
        list(FACTORIES[framework](linked_folder, **options))
    loader = FACTORIES[framework](linked_folder, on_error="skip", drop_last=False, **options)
    assert sum(len(labels) for _, labels in loader) == 24


def test_data_shards_names_the_link_loop_and_writes_nothing(fault, linked_folder, tmp_path):
    done = subprocess.run([FEEDBENCH, "data", "shards", str(linked_folder), str(tmp_path / "shards")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"feedbench: error: {linked_folder / 'class_001' / 'self.jpg'}: unreadable (Too many levels of symbolic links)"]
    assert not (tmp_path / "shards").exists()


def test_a_folder_given_as_a_link_loop_is_named(fault, tmp_path):
    os.symlink("data", tmp_path / "data")
    with pytest.raises(DatasetError, match=r"data: no such image folder"):
        scan_image_folder(tmp_path / "data")


@AS_ROOT
def test_a_class_folder_that_cannot_be_listed_is_named(fault, small_folder, tmp_path):
    root = tmp_path / "locked"
    shutil.copytree(small_folder.root, root)
    (root / "class_002").chmod(0)
    try:
        with pytest.raises(DatasetError, match=r"class_002: cannot list it \(Permission denied\)"):
            scan_image_folder(root)
    finally:
        (root / "class_002").chmod(0o755)
