"""Shared fixtures. torch and torchvision are imported first, before anything can import
TensorFlow: the other order crashes the interpreter (DESIGN.md, "Import order")."""

import pytest
import torch  # noqa: F401  (import order, see above)
import torchvision  # noqa: F401

from feedbench.datasets import make_image_folder, make_image_shards, make_text_corpus


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keeps the tests' cache (TFDS preparations, default datasets) out of the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEEDBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """40 images in 4 classes, with every kind of file a real folder has."""
    root = tmp_path_factory.mktemp("data") / "images"
    return make_image_folder(root, 40, classes=4, seed=1, gray_fraction=0.1, png_fraction=0.1, cmyk_fraction=0.1)


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory):
    """300 documents in 3 classes, in small row groups so that there are several shards."""
    root = tmp_path_factory.mktemp("data") / "text"
    return make_text_corpus(root, 300, classes=3, seed=2, rows_per_group=32, rows_per_shard=128, workers=1)


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory):
    """24 images of about 96x72 in 3 classes, with grayscale, CMYK and PNG files among them."""
    root = tmp_path_factory.mktemp("vision") / "folder"
    return make_image_folder(root, 24, classes=3, seed=11, size=(96, 72), gray_fraction=0.15, png_fraction=0.15,
                             cmyk_fraction=0.15, workers=1)


@pytest.fixture(scope="session")
def small_shards(small_folder, tmp_path_factory):
    return make_image_shards(small_folder.root, tmp_path_factory.mktemp("vision") / "shards", rows_per_group=8)
