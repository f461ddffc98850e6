"""Checks of settings, shared by every frozen config (image, text, measurement, grid): the
same flag gets the same message everywhere. Each raises ConfigError naming the setting."""

from __future__ import annotations

import math
from typing import Any

from feedbench.pipelines.core.errors import ConfigError

ON_ERROR = ("raise", "skip")
AUTOTUNE = "autotune"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole_number(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None, hint: str = "") -> None:
    """`value` is an int (not a bool, not 4.0) in [minimum, maximum]."""
    if _is_int(value) and value >= minimum and (maximum is None or value <= maximum):
        return
    if not hint:
        hint = f"a whole number >= {minimum}" if maximum is None else f"a whole number from {minimum} to {maximum}"
    raise ConfigError(f"{name} must be {hint}, got {value!r}")


def positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def positive_number(name: str, value: Any) -> None:
    """A finite number > 0 (an int or a float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def fraction(name: str, value: Any, *, open_low: bool = True) -> None:
    """A number in (0, 1] (`open_low`) or [0, 1]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0 < value <= 1 if open_low else 0 <= value <= 1)
    if not ok:
        raise ConfigError(f"{name} must be a fraction in {'(0, 1]' if open_low else '[0, 1]'}, got {value!r}")


def count_or_autotune(name: str, value: Any) -> None:
    """An integer >= 0 or "autotune" (a worker count, a prefetch depth)."""
    if value == AUTOTUNE:
        return
    if not _is_int(value) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0 or 'autotune', got {value!r}")


def boolean(name: str, value: Any, *, none_allowed: bool = False) -> None:
    """True or False (a string "no" is not False); None too where `none_allowed`."""
    if isinstance(value, bool) or none_allowed and value is None:
        return
    allowed = "True, False or None" if none_allowed else "True or False"
    raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def seed(value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {value!r}")
