"""Devices: the torch device a run names ("auto", "cpu", "cuda", "cuda:N"), checked."""

from __future__ import annotations

import torch

from feedbench.pipelines.core.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for "auto", "cpu", "cuda" or "cuda:N".

    Raises:
        ConfigError: CUDA asked for where torch sees none, or a device it does not know.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r}: not a device; choose auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ConfigError(f"device {device!r}: only cpu and cuda are supported")
    return resolved
