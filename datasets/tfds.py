"""The generated (or the user's own) image and text data, loaded through TensorFlow Datasets.

Offline: images go through ``tfds.folder_dataset.ImageFolder``, which reads files in place;
text through a small ``GeneratorBasedBuilder`` that prepares a JSONL corpus once into the
feedbench cache. TensorFlow is imported only when one of these functions is called, through
the helper that fixes the import order beside torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from feedbench.datasets.folders import scan_image_folder
from feedbench.pipelines.core.errors import DatasetError
from feedbench.pipelines.core.files import cache_dir
from feedbench.pipelines.core.frameworks import import_tfds

_SPLIT = "train"


def _key(*parts: Any) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:16]


def _split_view(root: Path) -> Path:
    """A cache folder whose ``train`` entry links to `root`.

    TFDS's ImageFolder expects ``root_dir/<split>/<class>/<image>``; an ImageFolder is
    ``root/<class>/<image>``. A link gives it that shape without touching the user's folder.
    """
    view = cache_dir() / "tfds" / f"imagefolder-{_key(root)}"
    link = view / _SPLIT
    view.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and Path(os.readlink(link)) == root:
        return view
    if link.is_symlink():
        link.unlink()
    link.symlink_to(root, target_is_directory=True)
    return view


def tfds_images(root: str | os.PathLike[str], *, decode: bool = True, shuffle_files: bool = False):
    """An ImageFolder (``root/<class>/<image>``) as a TFDS dataset.

    Labels are the class folders in sorted order, as torchvision numbers them; TFDS's
    ImageFolder reads JPEG and PNG files only and orders examples by its own fixed shuffle.

    Args:
        root: The ImageFolder root.
        decode: Decode images to uint8 [H, W, 3]; False keeps the encoded bytes (for a
            pipeline that decodes and crops in one step).
        shuffle_files: Shuffle the file order on each iteration.

    Returns:
        A ``tf.data.Dataset`` of dicts with "image", "label" (int64) and "image/filename".

    Raises:
        DatasetError: `root` is not an ImageFolder with images.
    """
    root = Path(root).resolve()
    scan_image_folder(root)  # a clear error for a missing or empty folder, before TFDS's
    tfds = import_tfds()
    builder = tfds.folder_dataset.ImageFolder(str(_split_view(root)), shape=(None, None, 3))
    decoders = None if decode else {"image": tfds.decode.SkipDecoding()}
    return builder.as_dataset(split=_SPLIT, shuffle_files=shuffle_files, decoders=decoders)


def _corpus_file(source: Path) -> tuple[Path, int]:
    """The JSONL file of `source` (a feedbench corpus folder or a .jsonl) and its class count."""
    path = source / "corpus.jsonl" if source.is_dir() else source
    if not path.is_file():
        raise DatasetError(f"{source}: no JSONL corpus there (expected a .jsonl file or a folder with corpus.jsonl)")
    labels = set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                label = record["label"]
                if not isinstance(record["text"], str) or not isinstance(label, int) or isinstance(label, bool):
                    raise TypeError("text must be a string and label an integer")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(f"{path}:{number}: not a {{'text', 'label'}} record ({exc})") from exc
            labels.add(label)
    if not labels:
        raise DatasetError(f"{path}: no records")
    if min(labels) < 0:
        raise DatasetError(f"{path}: negative label {min(labels)}")
    return path, max(labels) + 1


@functools.lru_cache(maxsize=1)
def _text_builder_class():
    """Defines the TFDS builder on first use, so that TFDS is imported only then."""
    tfds = import_tfds()

    class FeedbenchText(tfds.core.GeneratorBasedBuilder):
        """Labelled documents from a feedbench JSONL corpus, prepared offline."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "First release."}
        # TFDS looks for a builder's checksums beside its code, found through its top-level
        # package; `feedbench` is a namespace that an editable install does not expose as a
        # folder. This builder downloads nothing: its code path is this file.
        code_path = Path(__file__)

        def __init__(self, *, jsonl: Path, num_classes: int, **kwargs: Any) -> None:
            self._jsonl = jsonl
            self._num_classes = num_classes
            super().__init__(**kwargs)

        def _info(self):
            # DatasetInfo directly: `dataset_info_from_configs` looks for metadata files in
            # the defining package, which an editable install does not expose as a folder.
            return tfds.core.DatasetInfo(
                builder=self,
                description="Labelled documents from a feedbench JSONL corpus.",
                features=tfds.features.FeaturesDict(
                    {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(num_classes=self._num_classes)}
                ),
                supervised_keys=("text", "label"),
                disable_shuffling=True,  # keep the corpus's order, as the other readers do
            )

        def _split_generators(self, dl_manager):
            return {_SPLIT: self._generate_examples()}

        def _generate_examples(self):
            with open(self._jsonl, encoding="utf-8") as handle:
                for number, line in enumerate(handle):
                    if line.strip():
                        record = json.loads(line)
                        yield number, {"text": record["text"], "label": record["label"]}

    return FeedbenchText


def tfds_text(source: str | os.PathLike[str], *, shuffle_files: bool = False):
    """A JSONL corpus (records ``{"text", "label"}``) as a TFDS dataset, prepared offline.

    The first call prepares TFDS's own files in the feedbench cache, keyed by the corpus's
    path, size and modification time; later calls read them.

    Args:
        source: A feedbench text corpus folder or a ``.jsonl`` file.
        shuffle_files: Shuffle the order of TFDS's files on each iteration.

    Returns:
        A ``tf.data.Dataset`` of dicts with "text" (string) and "label" (int64), in file order.

    Raises:
        DatasetError: No corpus there, or a record that is not ``{"text", "label"}``.
    """
    path, num_classes = _corpus_file(Path(source).resolve())
    stat = path.stat()
    data_dir = cache_dir() / "tfds" / f"text-{_key(path, stat.st_size, stat.st_mtime_ns)}"
    builder = _text_builder_class()(jsonl=path, num_classes=num_classes, data_dir=str(data_dir))
    builder.download_and_prepare()
    return builder.as_dataset(split=_SPLIT, shuffle_files=shuffle_files)
