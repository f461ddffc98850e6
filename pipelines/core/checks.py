"""Checks shared by the pipelines' frozen config objects (image and text): the same flag
gets the same message in every task."""

from __future__ import annotations

import os
from typing import Any

from feedbench.pipelines.core.errors import ConfigError

ON_ERROR = ("raise", "skip")


def default_workers() -> int:
    """One worker per core this process may use, less one for the consumer, at least 1."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


def positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def count_or_autotune(name: str, value: Any) -> None:
    if value == "autotune":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0 or 'autotune', got {value!r}")


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def seed(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {value!r}")
