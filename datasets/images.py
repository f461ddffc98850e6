"""A folder of photo-like images in the ImageFolder layout: ``root/<class>/<id>.jpg``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from feedbench.datasets import _photo, _store
from feedbench.datasets._parallel import chunked, map_chunks
from feedbench.pipelines.core.errors import ConfigError

KIND = "image-folder"
GENERATOR = "photo/1"  # bump when the pixels for a seed change, so old datasets are not reused
_CHUNK = 16


def class_name(label: int) -> str:
    """The folder of class `label`; zero-padded so that sorting names sorts labels."""
    return f"class_{label:03d}"


def _check(n: int, classes: int, size: tuple[int, int], quality: int, fractions: dict[str, float]) -> None:
    _store.check_counts(n, classes, "image")
    if len(size) != 2 or min(size) < 32:
        raise ConfigError(f"size must be (width, height) of at least 32 pixels each, got {size!r}")
    if not 1 <= quality <= 100:
        raise ConfigError(f"quality must be 1..100, got {quality}")
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be within 0..1, got {value}")
    if sum(fractions.values()) > 1.0:
        raise ConfigError(f"gray, png and cmyk fractions add up to more than 1: {fractions}")


def _paint_chunk(indices: range, tmp: str, params: dict) -> list[dict]:
    """Paints, encodes and writes images `indices`; returns their manifest entries."""
    entries = []
    for i in indices:
        rng = np.random.default_rng([params["seed"], i])
        spec = _photo.draw_spec(
            rng,
            tuple(params["size"]),
            spread=params["spread"],
            gray_fraction=params["gray_fraction"],
            png_fraction=params["png_fraction"],
            cmyk_fraction=params["cmyk_fraction"],
        )
        data = _photo.encode(_photo.paint(rng, spec.width, spec.height), spec, params["quality"])
        label = i % params["classes"]
        relative = f"{class_name(label)}/{i:07d}{spec.suffix}"
        with open(os.path.join(tmp, relative), "wb") as handle:
            handle.write(data)
        entries.append(
            {
                "path": relative,
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "label": label,
                "width": spec.width,
                "height": spec.height,
                "mode": spec.mode,
                "format": spec.fmt,
            }
        )
    return entries


def make_image_folder(
    root: str | os.PathLike[str],
    n: int,
    classes: int = 10,
    seed: int = 0,
    size: tuple[int, int] = (500, 375),
    *,
    quality: int = 90,
    spread: bool = True,
    gray_fraction: float = 0.02,
    png_fraction: float = 0.01,
    cmyk_fraction: float = 0.005,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> _store.Dataset:
    """Writes `n` photo-like images in the ImageFolder layout, with a manifest.

    Images have natural-image statistics (smooth regions, soft edges, texture of varying
    strength, muted colour); at 500x375 and quality 90 they average 100-130 KB, like
    ImageNet's photos, so they decode at a photo's speed. Sizes and aspect ratios vary
    around `size`; a few are grayscale or CMYK JPEGs and PNGs, as real folders hold.
    Image i has label ``i % classes`` and lives at ``root/class_<label>/<i>.jpg``.

    Generation is deterministic for `seed` (whatever `workers`), atomic (built beside
    `root` and renamed into place), and idempotent: the same arguments again reuse the
    dataset at `root` once it verifies against its manifest.

    Args:
        root: Folder to create; it must not exist, be empty, or hold a feedbench dataset.
        n: Number of images.
        classes: Number of classes (class folders), at most `n`.
        seed: Seed of every pixel.
        size: (width, height) of a typical image.
        quality: JPEG quality.
        spread: Vary sizes and aspect ratios; False makes every image exactly `size`.
        gray_fraction: Share of grayscale JPEGs.
        png_fraction: Share of PNGs.
        cmyk_fraction: Share of CMYK JPEGs.
        workers: Processes to paint with; None for every available core.
        overwrite: Replace a feedbench dataset of other arguments at `root`.
        progress: Called with a count of images as they are written.

    Returns:
        The dataset, with its manifest entries.

    Raises:
        ConfigError: An argument out of range.
        DatasetError: `root` cannot be used (see module docstring of ``_store``).
    """
    size = (int(size[0]), int(size[1]))
    fractions = {"gray_fraction": gray_fraction, "png_fraction": png_fraction, "cmyk_fraction": cmyk_fraction}
    _check(n, classes, size, quality, fractions)
    root = Path(root)
    params = {
        "generator": GENERATOR,
        "n": n,
        "classes": classes,
        "seed": seed,
        "size": list(size),
        "quality": quality,
        "spread": spread,
        **fractions,
    }
    reuse = _store.reusable(root, KIND, params, overwrite=overwrite, progress=progress)
    if reuse is not None:
        return reuse
    with _store.building(root) as tmp:
        for label in range(classes):
            (tmp / class_name(label)).mkdir()
        entries: list[dict] = []
        for chunk in map_chunks(_paint_chunk, chunked(n, _CHUNK), (str(tmp), params), workers=workers,
                                progress=progress):
            entries.extend(chunk)
        manifest = _store.write_manifest(tmp, KIND, params, entries, classes=[class_name(c) for c in range(classes)])
    return _store.finished(root, manifest)
