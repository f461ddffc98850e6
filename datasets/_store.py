"""Where a dataset lives on disk: its manifest, atomic creation, reuse and verification.

A feedbench dataset is a folder with a ``manifest.json`` written last. It is built in a
hidden sibling folder and renamed into place in one step, so a crash part-way leaves
nothing that looks like a complete dataset. Asked for again with the same parameters, the
folder is reused if every file still matches its manifest. A folder that is not a feedbench
dataset is never written into or deleted.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "feedbench-dataset/1"
_TMP_TAG = ".feedbench-tmp-"


@dataclass(frozen=True)
class Dataset:
    """A verified dataset on disk, as its manifest describes it.

    Attributes:
        root: The dataset's folder.
        kind: "image-folder", "image-shards" or "text-corpus".
        params: The arguments it was made with; equal params mean the same data.
        files: One entry per file: "path" (relative, POSIX), "size_bytes", "sha256", and
            kind-specific fields ("label", "width", "height", "mode", "rows").
        reused: True when an existing dataset was verified and reused, not generated.
    """

    root: Path
    kind: str
    params: Mapping[str, Any]
    files: tuple[Mapping[str, Any], ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    reused: bool = False

    @property
    def size_bytes(self) -> int:
        return sum(f["size_bytes"] for f in self.files)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(root: Path, path: Path, **fields: Any) -> dict[str, Any]:
    """A manifest entry for `path`, a file under `root`."""
    data = path.read_bytes()
    return {
        "path": path.relative_to(root).as_posix(),
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **fields,
    }


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The parsed manifest of `root`, or None when `root` has none.

    Raises:
        DatasetError: The manifest exists but is not a feedbench manifest.
    """
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a feedbench manifest (expected format {FORMAT!r})")
    return manifest


def verify(root: Path, manifest: Mapping[str, Any], *, hashes: bool = True) -> None:
    """Checks that every file of the manifest is there, of its size and (optionally) hash.

    Raises:
        DatasetError: Naming the first file that is missing or differs.
    """
    for entry in manifest["files"]:
        path = root / entry["path"]
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DatasetError(f"{path}: listed in {root / MANIFEST} but unreadable ({exc.strerror})") from exc
        if size != entry["size_bytes"]:
            raise DatasetError(f"{path}: {size} bytes, its manifest says {entry['size_bytes']}")
        if hashes and sha256_file(path) != entry["sha256"]:
            raise DatasetError(f"{path}: contents differ from its manifest (SHA-256)")


def load(root: str | os.PathLike[str], *, kind: str | None = None, hashes: bool = False) -> Dataset:
    """Opens an existing feedbench dataset.

    Args:
        root: The dataset's folder.
        kind: The kind expected; another kind is an error.
        hashes: Also check every file's SHA-256 (reads the whole dataset).

    Raises:
        DatasetError: No dataset there, another kind, or a file that does not verify.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise DatasetError(f"{root}: not a feedbench dataset (no {MANIFEST})")
    if kind is not None and manifest["kind"] != kind:
        raise DatasetError(f"{root}: a feedbench {manifest['kind']} dataset, not {kind}")
    verify(root, manifest, hashes=hashes)
    return _dataset(root, manifest, reused=True)


def _dataset(root: Path, manifest: Mapping[str, Any], *, reused: bool) -> Dataset:
    return Dataset(
        root=root,
        kind=manifest["kind"],
        params=manifest["params"],
        files=tuple(manifest["files"]),
        extra=manifest.get("extra", {}),
        reused=reused,
    )


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}={old.get(k)!r} (asked {new.get(k)!r})" for k in keys if old.get(k) != new.get(k))


def existing(root: Path, kind: str, params: Mapping[str, Any], *, overwrite: bool) -> Dataset | None:
    """Decides what to do with `root` before generating into it.

    Returns:
        The dataset to reuse, or None when it must be generated (root absent, empty, or a
        feedbench dataset that `overwrite` allows replacing).

    Raises:
        DatasetError: `root` is a file, a folder that is not a feedbench dataset, or a
            feedbench dataset of other parameters or that does not verify, without
            `overwrite`.
    """
    if not root.exists():
        return None
    if not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder; choose a new or empty folder")
    manifest = read_manifest(root)
    if manifest is None:
        if any(root.iterdir()):
            raise DatasetError(
                f"{root}: exists and is not a feedbench dataset (no {MANIFEST}); "
                "choose a new or empty folder, nothing was changed"
            )
        return None
    if overwrite:
        return None
    if manifest["kind"] != kind or manifest["params"] != dict(params):
        what = _differences(manifest["params"], params) if manifest["kind"] == kind else f"kind {manifest['kind']}"
        raise DatasetError(
            f"{root}: holds a feedbench {manifest['kind']} dataset made with other arguments "
            f"({what}); choose another folder or pass overwrite to replace it"
        )
    try:
        verify(root, manifest)
    except DatasetError as exc:
        raise DatasetError(f"{exc}; pass overwrite to regenerate {root}") from exc
    return _dataset(root, manifest, reused=True)


def check_counts(n: int, classes: int, unit: str) -> None:
    """Validates the item and class counts of a generated dataset.

    Raises:
        ConfigError: Naming the argument out of range.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ConfigError(f"n must be a positive number of {unit}s, got {n!r}")
    checks.positive_int("classes", classes)
    if classes > n:
        raise ConfigError(f"classes ({classes}) must not exceed n ({n}): every class needs at least one {unit}")


def reusable(root: Path, kind: str, params: Mapping[str, Any], *, overwrite: bool, progress) -> Dataset | None:
    """`existing`, reporting a reused dataset's items as done to `progress`."""
    reuse = existing(root, kind, params, overwrite=overwrite)
    if reuse is not None and progress:
        progress(params["n"])
    return reuse


def _remove_stale_temps(root: Path) -> None:
    """Removes temporary folders that a crashed generation of `root` left behind."""
    prefix = f".{root.name}{_TMP_TAG}"
    for path in root.parent.glob(glob.escape(prefix) + "*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by an interrupted generation", path)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def building(root: Path) -> Iterator[Path]:
    """Yields a temporary folder beside `root`, renamed to `root` when the block succeeds.

    A feedbench dataset already at `root` (which `existing` allowed replacing) is swapped
    out in the same step and then deleted; on failure the temporary folder is removed and
    `root` is left as it was.

    Raises:
        DatasetError: The parent folder cannot be created or written.
    """
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(root)
        tmp = root.parent / f".{root.name}{_TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as exc:
        raise DatasetError(f"{root}: cannot write there ({exc.strerror or exc})") from exc
    try:
        yield tmp
        _install(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _install(tmp: Path, root: Path) -> None:
    """Moves the finished `tmp` to `root`, replacing an empty folder or an old dataset."""
    old = None
    if root.exists() and any(root.iterdir()) and read_manifest(root) is None:
        # Someone put files there while this dataset was being made: leave them alone.
        raise DatasetError(f"{root}: changed during generation and is not a feedbench dataset; nothing was replaced")
    if root.exists() and any(root.iterdir()):
        old = root.parent / f".{root.name}.feedbench-old-{secrets.token_hex(4)}"
        root.rename(old)
    try:
        os.replace(tmp, root)  # onto a missing or empty folder: one atomic rename
    except OSError:
        if old is not None:
            old.rename(root)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_manifest(tmp: Path, kind: str, params: Mapping[str, Any], files: list[dict[str, Any]], **extra: Any) -> dict:
    """Writes the manifest into the folder being built; call it last."""
    from feedbench.pipelines.core.version import __version__

    manifest = {
        "format": FORMAT,
        "kind": kind,
        "params": dict(params),
        "created_by": f"feedbench {__version__}",
        "extra": extra,
        "files": files,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def finished(root: Path, manifest: Mapping[str, Any]) -> Dataset:
    """The Dataset for a manifest just written and installed at `root`."""
    return _dataset(root, manifest, reused=False)
