"""Image folders in torchvision's ImageFolder layout, ROOT/<class>/<image>: listed as
torchvision lists them. No pyarrow, no framework: a DataLoader worker reading files needs
only this."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from feedbench.pipelines.core.errors import DatasetError

# What torchvision's ImageFolder accepts, lower case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of `folder`; an unreadable one is a DatasetError naming it."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list it ({exc.strerror or exc})") from None


def _is(test: Callable[[], bool]) -> bool:
    """``entry.is_dir`` or ``entry.is_file``, following links: False for a link that leads
    nowhere (a loop), which DirEntry raises for."""
    try:
        return test()
    except OSError:
        return False


def scan_image_folder(source: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Lists an ImageFolder's classes and (file, label) pairs the way torchvision does.

    Classes are the sorted names of the sub-folders; label i is the i-th of them; files
    are those with an image extension, sorted within their class. A link among the files
    that leads nowhere (dangling, a loop) is listed: reading it fails, which the pipelines
    report or skip and count, not hide. A link among the class folders that leads nowhere
    is not a class.

    Raises:
        DatasetError: `source` is missing or not a folder, it or a class folder cannot be
            listed (permissions), it has no class folders, or a class folder holds no image.
    """
    try:
        is_folder = source.is_dir()
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read it ({exc.strerror or exc})") from None
    if not is_folder:
        raise DatasetError(f"{source}: no such image folder")
    classes = sorted(entry.name for entry in _entries(source) if _is(entry.is_dir) and not entry.name.startswith("."))
    if not classes:
        raise DatasetError(f"{source}: no class folders (expected {source}/<class>/<image>)")
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = sorted(
            Path(entry.path)
            for entry in _entries(source / name)
            if (_is(entry.is_file) or entry.is_symlink()) and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise DatasetError(f"{source / name}: class folder with no image files ({', '.join(IMAGE_EXTENSIONS)})")
        samples.extend((path, label) for path in files)
    return classes, samples
