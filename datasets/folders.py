"""Image folders in torchvision's ImageFolder layout, ROOT/<class>/<image>: listed as
torchvision lists them. No pyarrow, no framework: a DataLoader worker reading files needs
only this."""

from __future__ import annotations

import os
from pathlib import Path

from feedbench.pipelines.core.errors import DatasetError

# What torchvision's ImageFolder accepts, lower case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def scan_image_folder(source: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Lists an ImageFolder's classes and (file, label) pairs the way torchvision does.

    Classes are the sorted names of the sub-folders; label i is the i-th of them; files
    are those with an image extension, sorted within their class.

    Raises:
        DatasetError: `source` is missing or not a folder, has no class folders, or a class
            folder holds no image.
    """
    if not source.is_dir():
        raise DatasetError(f"{source}: no such image folder")
    classes = sorted(entry.name for entry in os.scandir(source) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DatasetError(f"{source}: no class folders (expected {source}/<class>/<image>)")
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = sorted(
            Path(entry.path)
            for entry in os.scandir(source / name)
            # A dangling link is listed too: reading it fails, which is reported, not hidden.
            if (entry.is_file() or entry.is_symlink()) and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise DatasetError(f"{source / name}: class folder with no image files ({', '.join(IMAGE_EXTENSIONS)})")
        samples.extend((path, label) for path in files)
    return classes, samples
