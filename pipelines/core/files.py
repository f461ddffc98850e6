"""Files feedbench writes: whole or not at all, and where it keeps what it can make again."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.errors import OutputError


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """Writes `path` through a temporary file beside it, renamed over it when complete.

    `write(tmp)` writes the temporary file; if it raises, nothing is left behind and `path`
    keeps its old content (or stays absent). An OSError of the writing or the rename (a full
    or read-only file system, no such folder) is raised as OutputError naming `path`; other
    errors as they are.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. the parent is not a folder: there is nothing to remove
            pass


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """:func:`write_atomically` of UTF-8 text."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_writable(folder: str | os.PathLike[str], what: str) -> None:
    """Raises OutputError unless a file can be made in `folder` (it exists, is a folder, and
    the file system takes writes), so that a command fails before it measures, not after.
    `what` names the option it came from (``--out cmp``), for the message."""
    folder = Path(folder)
    probe = folder / f".feedbench-probe.{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        error = OutputError(exc.errno, exc.strerror or str(exc), f"{what} {folder}")
        error.action = "cannot write there"
        raise error from None


def cache_dir() -> Path:
    """``$FEEDBENCH_CACHE``, else ``$XDG_CACHE_HOME/feedbench``, else ``~/.cache/feedbench``."""
    explicit = os.environ.get("FEEDBENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "feedbench"
