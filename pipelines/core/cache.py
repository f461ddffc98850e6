"""Where feedbench keeps what it can make again: default datasets, TFDS preparations."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FEEDBENCH_CACHE``, else ``$XDG_CACHE_HOME/feedbench``, else ``~/.cache/feedbench``."""
    explicit = os.environ.get("FEEDBENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "feedbench"
